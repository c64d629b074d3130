package authn

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// FuzzExtract feeds arbitrary header values, cookies and query strings to
// token extraction and to Authenticate. Nothing may panic; a header token
// is always the tail of a value that carries its prefix; removing a
// parameter or cookie leaves none of that name; every outcome is 200, 401
// or 403, and a rejection always says why.
func FuzzExtract(f *testing.F) {
	tok := sign(f, iss1, claims(iss1, "sub-1", nil))
	f.Add("Bearer "+tok, "", "", "")
	f.Add("bearer   "+tok, "Token "+tok, "session="+tok, "token="+tok)
	f.Add("Basic dXNlcjpwYXNz", "x Token \x00"+tok, `session="`+tok+`"; a=b`, "access_token=&token=%zz")
	f.Add("Bearer", "Token ", ";;=;session", "&&=&token")
	f.Add("Bearer !!!", "TOKEN "+tok+" trailing", "session=a; session=b", "secondary_token="+tok+"&token="+tok)
	f.Add("Bearer a.b.c", "Token", " session=\"", "access%5Ftoken=x+y")

	docs := append(load(f, "headers-params.yaml"), load(f, "two-issuers.yaml")...)
	a, err := Compile(docs, options())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, authz, custom, cookieLine, query string) {
		h := http.Header{}
		h.Add("Authorization", authz)
		h.Add("Auth-Token", custom)
		h.Add("X-Raw-Token", custom)
		h.Add("Cookie", cookieLine)
		r := get("/")
		r.Header, r.Query = h, query

		for _, e := range extract(nil, a.locations, r, maxFound) {
			l := a.locations[e.loc]
			if l.Kind != InHeader {
				continue
			}
			ok := false
			for _, v := range h.Values(l.Name) {
				v = strings.Trim(v, " \t")
				if strings.HasSuffix(v, e.raw) && (l.Prefix == "" && v == e.raw || strings.Contains(strings.ToLower(v), strings.ToLower(l.Prefix))) {
					ok = true
				}
			}
			if !ok {
				t.Fatalf("token %q from %s is not the tail of a value with the prefix: %q", e.raw, l, h.Values(l.Name))
			}
		}

		for _, name := range []string{"token", "access_token", "secondary_token"} {
			if v, found := queryParam(withoutParam(query, name), name); found {
				t.Fatalf("withoutParam(%q, %q) still has %q", query, name, v)
			}
		}
		if line, left := withoutCookies(h, []string{"session"}); left {
			if v, found := cookie(http.Header{"Cookie": {line}}, "session"); found {
				t.Fatalf("withoutCookies(%q) = %q still has session=%q", cookieLine, line, v)
			}
		}

		res := a.Authenticate(context.Background(), r)
		switch res.Status {
		case http.StatusOK:
			if res.Err != nil {
				t.Fatalf("200 with an error: %v", res.Err)
			}
		case http.StatusUnauthorized, http.StatusForbidden:
			if res.Err == nil || res.Identity != nil {
				t.Fatalf("rejection %d with err %v, identity %v", res.Status, res.Err, res.Identity)
			}
		default:
			t.Fatalf("status %d", res.Status)
		}
	})
}

// FuzzCacheAgrees sends arbitrary tokens and header values, twice, to an
// Authenticator with a verified-token cache, and once to one without: the
// outcomes must be the same, the second time (a cache hit for a valid
// token) too.
func FuzzCacheAgrees(f *testing.F) {
	tok := sign(f, iss1, claims(iss1, "sub-1", map[string]any{"aud": "api://orders", "scope": "a b"}))
	f.Add("Bearer "+tok, "", "")
	f.Add("Bearer "+tok, tok, "access_token="+tok)
	f.Add("Bearer "+tok+"x", "", "")
	f.Add("Bearer "+tok[:len(tok)-1], "", "")
	f.Add("Bearer "+strings.Replace(tok, ".", "..", 1), "", "")
	f.Add("bearer "+tok, "", "x=1&access_token="+tok)
	cache := NewCache(CacheConfig{MaxEntries: 64})
	cached, fresh := cachedPair(f, oneRule, cache, options())
	f.Fuzz(func(t *testing.T, authz, spoof, query string) {
		r := get("/?" + query)
		r.Header.Set("Authorization", authz)
		if spoof != "" {
			r.Header["X_user"] = []string{spoof}
		}
		want := fresh.Authenticate(context.Background(), r)
		for i := range 2 {
			sameOutcome(t, fmt.Sprintf("request %d", i+1), want, cached.Authenticate(context.Background(), r))
		}
	})
}
