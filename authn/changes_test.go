package authn

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/idgate/idgate/audit"
	"github.com/idgate/idgate/request"

	"github.com/idgate/idgate/token"
)

// outputClaims is a claim set with every kind of value outputs.yaml maps
// to a header.
func outputClaims() map[string]any {
	return claims(iss1, "sub-1", map[string]any{
		"nested": map[string]any{"nested-2": map[string]any{"key2": "nested value"}},
		"groups": []any{"g1", "g2", json.Number("3")},
		"admin":  true,
		"ratio":  json.Number("1.5"),
		"mixed":  []any{"a", map[string]any{"b": "c"}},
		"crlf":   "x\r\nX-Injected: 1",
		"scope":  "read write",
		"scp":    "Orders.Read  Orders.Write",
		"roles":  "A B",
	})
}

// Headers set from claims follow Istio's outputClaimToHeaders
// (istio-semantics.md §3.1; Envoy authenticator.cc addJWTClaimToHeader):
// strings, numbers and booleans, nested claims through "a.b.c", no header
// for absent or object claims. idgate adds lists of scalars, joined with
// ",", and never sets a value a header cannot carry.
func TestOutputClaimToHeaders(t *testing.T) {
	a := compile(t, "outputs.yaml")
	raw := sign(t, iss1, outputClaims())
	res := a.Authenticate(context.Background(), get("/", "Authorization", "Bearer "+raw))
	if res.Status != http.StatusOK {
		t.Fatalf("status %d: %v", res.Status, res.Err)
	}
	got := map[string]string{}
	for _, h := range res.Changes.SetHeaders {
		if _, dup := got[h.Name]; dup {
			t.Errorf("header %s set twice", h.Name)
		}
		got[h.Name] = h.Value
	}
	want := map[string]string{
		"X-Jwt-Iss":          iss1,
		"X-Jwt-Iat":          fmt.Sprint(now.Unix() - 60),
		"X-Jwt-Nested-Claim": "nested value",
		"X-Jwt-Groups":       "g1,g2,3",
		"X-Jwt-Admin":        "true",
		"X-Jwt-Ratio":        "1.500000",
		"X-Test-Payload":     strings.Split(raw, ".")[1],
	}
	for name, v := range want {
		if got[name] != v {
			t.Errorf("%s = %q, want %q", name, got[name], v)
		}
	}
	for _, name := range []string{"X-Jwt-Object", "X-Jwt-Mixed", "X-Jwt-Missing", "X-Jwt-Crlf"} {
		if v, ok := got[name]; ok {
			t.Errorf("%s = %q, want no header", name, v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("set %d headers, want %d: %v", len(got), len(want), got)
	}
}

// outputPayloadToHeader carries the token's payload segment as received
// (jwt_test.go valid-token-noauthz compares X-Test-Payload with it), and
// every header a rule may set is stripped from what the client sent, with
// or without a token (§3.3, Envoy sanitizeHeaders).
func TestOutputHeadersAreSanitized(t *testing.T) {
	a := compile(t, "outputs.yaml")
	wantOut := []string{
		"X-Jwt-Admin", "X-Jwt-Crlf", "X-Jwt-Groups", "X-Jwt-Iat", "X-Jwt-Iss", "X-Jwt-Missing",
		"X-Jwt-Mixed", "X-Jwt-Nested-Claim", "X-Jwt-Object", "X-Jwt-Ratio", "X-Test-Payload",
	}
	if got := a.OutputHeaders(); !slices.Equal(got, wantOut) {
		t.Errorf("OutputHeaders() = %v, want %v", got, wantOut)
	}
	for _, name := range []string{"anonymous", "authenticated"} {
		t.Run(name, func(t *testing.T) {
			r := get("/", "X-Test-Payload", "forged", "X-Jwt-Missing", "forged", "X-Other", "kept")
			if name == "authenticated" {
				r.Header.Set("Authorization", "Bearer "+sign(t, iss1, claims(iss1, "sub-1", nil)))
			}
			res := a.Authenticate(context.Background(), r)
			if res.Status != http.StatusOK {
				t.Fatalf("status %d: %v", res.Status, res.Err)
			}
			res.Changes.Apply(r.Header)
			if v := r.Header.Get("X-Jwt-Missing"); v != "" {
				t.Errorf("X-Jwt-Missing = %q after Apply, want it removed", v)
			}
			if got, want := r.Header.Get("X-Test-Payload"), ""; name == "anonymous" && got != want {
				t.Errorf("X-Test-Payload = %q, want it removed", got)
			}
			if got := r.Header.Get("X-Test-Payload"); name == "authenticated" && (got == "" || got == "forged") {
				t.Errorf("X-Test-Payload = %q, want the token's payload", got)
			}
			if r.Header.Get("X-Other") != "kept" {
				t.Error("an unrelated header was removed")
			}
		})
	}
}

// forwardOriginalToken (§3.1): false by default, and the token is removed
// from where it was found (jwt_test.go valid-token-noauthz expects an
// empty Authorization upstream); true keeps it (valid-token-forward).
func TestForwardOriginalToken(t *testing.T) {
	t1 := sign(t, iss1, claims(iss1, "sub-1", nil))
	t2 := sign(t, iss2, claims(iss2, "sub-2", nil))
	tests := []struct {
		name, policy string
		req          func() (*http.Request, error)
		wantHeader   http.Header // after Apply; only the names listed are compared
		wantQuery    string      // the query forwarded
	}{
		{
			name: "header removed", policy: "outputs.yaml",
			req: func() (*http.Request, error) {
				r, err := http.NewRequest("GET", "/p?a=1", nil)
				r.Header.Set("Authorization", "Bearer "+t1)
				return r, err
			},
			wantHeader: http.Header{"Authorization": nil},
			wantQuery:  "a=1",
		},
		{
			name: "header kept when forwarded", policy: "outputs.yaml",
			req: func() (*http.Request, error) {
				r, err := http.NewRequest("GET", "/p", nil)
				r.Header.Set("Authorization", "Bearer "+t2)
				return r, err
			},
			wantHeader: http.Header{"Authorization": {"Bearer " + t2}},
		},
		{
			name: "query parameter kept when forwarded", policy: "outputs.yaml",
			req:       func() (*http.Request, error) { return http.NewRequest("GET", "/p?a=1&access_token="+t2, nil) },
			wantQuery: "a=1&access_token=" + t2,
		},
		{
			name: "query parameter removed, others kept byte for byte", policy: "cookie-param.yaml",
			req: func() (*http.Request, error) {
				return http.NewRequest("GET", "/p?a=%2F+x&token="+t1+"&b&token=again&c=3", nil)
			},
			wantQuery: "a=%2F+x&b&c=3",
		},
		{
			name: "cookie removed, others kept", policy: "cookie-param.yaml",
			req: func() (*http.Request, error) {
				r, err := http.NewRequest("GET", "/p", nil)
				r.Header.Add("Cookie", "theme=dark; session="+t1)
				r.Header.Add("Cookie", "lang=en")
				return r, err
			},
			wantHeader: http.Header{"Cookie": {"theme=dark; lang=en"}},
		},
		{
			name: "only cookie removed", policy: "cookie-param.yaml",
			req: func() (*http.Request, error) {
				r, err := http.NewRequest("GET", "/p", nil)
				r.Header.Add("Cookie", "session="+t1)
				return r, err
			},
			wantHeader: http.Header{"Cookie": nil},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hr, err := tt.req()
			if err != nil {
				t.Fatal(err)
			}
			a := compile(t, tt.policy)
			attrs := get(hr.URL.Path + "?" + hr.URL.RawQuery)
			attrs.Header = hr.Header.Clone()
			res := a.Authenticate(context.Background(), attrs)
			if res.Status != http.StatusOK || res.Identity == nil {
				t.Fatalf("status %d, identity %v: %v", res.Status, res.Identity, res.Err)
			}
			h := hr.Header.Clone()
			res.Changes.Apply(h)
			for name, want := range tt.wantHeader {
				if got := h.Values(name); !slices.Equal(got, want) {
					t.Errorf("%s = %q, want %q", name, got, want)
				}
			}
			query := hr.URL.RawQuery
			if res.Changes.RewriteQuery {
				query = res.Changes.Query
			}
			if query != tt.wantQuery {
				t.Errorf("query = %q, want %q", query, tt.wantQuery)
			}
		})
	}
}

// The identity (§3.6): principal iss/sub, audiences from a string or a
// list, presenter from azp; "scope" and "permission" always split on
// spaces, other claims only when the rule lists them in
// spaceDelimitedClaims (§4.9, Istio ≥1.28; istio/istio#56873).
func TestIdentity(t *testing.T) {
	a := compile(t, "outputs.yaml")
	c := outputClaims()
	c["aud"] = []any{"a1", "a2"}
	c["azp"] = "client-app"
	c["permission"] = "p1"
	raw := sign(t, iss1, c)
	res := a.Authenticate(context.Background(), get("/", "Authorization", "Bearer "+raw))
	id := res.Identity
	if id == nil {
		t.Fatalf("no identity: %v", res.Err)
	}
	if id.Principal() != iss1+"/sub-1" || id.Issuer != iss1 || id.Subject != "sub-1" || id.Presenter != "client-app" || id.Fingerprint != audit.Fingerprint(raw) {
		t.Errorf("identity = %+v", id)
	}
	if !slices.Equal(id.Audiences, []string{"a1", "a2"}) {
		t.Errorf("audiences = %v", id.Audiences)
	}
	wantClaims := map[string]any{
		"scope":      []any{"read", "write"},
		"permission": []any{"p1"},
		"scp":        []any{"Orders.Read", "Orders.Write"},
		"roles":      "A B",
	}
	for name, want := range wantClaims {
		if got := fmt.Sprintf("%#v", claim(id, name)); got != fmt.Sprintf("%#v", want) {
			t.Errorf("claim %s = %s, want %#v", name, got, want)
		}
	}
	if _, ok := claim(id, "iat").(json.Number); !ok {
		t.Errorf("iat is %T, want json.Number", claim(id, "iat"))
	}

	// Without spaceDelimitedClaims, scp stays one string (§5: Entra scp).
	d := compile(t, "default.yaml")
	e := sign(t, entra, claims(entra, "alice", map[string]any{"aud": entraAud, "scp": "Orders.Read Orders.Write"}))
	id = d.Authenticate(context.Background(), get("/", "Authorization", "Bearer "+e)).Identity
	if id == nil || claim(id, "scp") != "Orders.Read Orders.Write" {
		t.Errorf("scp = %#v, want the string unsplit", id)
	}
	if !slices.Equal(id.Audiences, []string{entraAud}) {
		t.Errorf("audiences = %v, want [%s]", id.Audiences, entraAud)
	}
}

// An Entra v1 issuer ends in "/", so the principal has "//" (§0 rule 7).
func TestPrincipalOfEntraV1(t *testing.T) {
	const v1 = "https://sts.windows.net/11111111-2222-3333-4444-555555555555/"
	id := newIdentity(&token.Token{Issuer: v1, Subject: "abc"}, &rule{split: alwaysSplit}, nil)
	if want := v1 + "/abc"; id.Principal() != want {
		t.Errorf("principal = %q, want %q", id.Principal(), want)
	}
}

func TestSplitClaimsLeavesInputAlone(t *testing.T) {
	in := map[string]any{"scope": "a  b", "other": "x y", "permission": " "}
	out := newIdentity(&token.Token{Claims: in}, &rule{split: alwaysSplit}, nil).Claims.Map()
	if in["scope"] != "a  b" {
		t.Errorf("input modified: %v", in)
	}
	if got := fmt.Sprint(out["scope"]); got != "[a b]" {
		t.Errorf("scope = %s, want [a b]", got)
	}
	if out["permission"] != " " {
		t.Errorf("a claim with no words = %#v, want it unchanged", out["permission"])
	}
	if out["other"] != "x y" {
		t.Errorf("other = %#v, want it unchanged", out["other"])
	}
}

func TestFormatNumber(t *testing.T) {
	tests := map[string]string{
		"0":                    "0",
		"1700000000":           "1700000000",
		"18446744073709551615": "18446744073709551615",
		"1e3":                  "1000",
		"1.5":                  "1.500000",
		"-3":                   "-3.000000",
		"1e20":                 "100000000000000000000.000000",
	}
	for lit, want := range tests {
		if got, _ := formatNumber(lit); got != want {
			t.Errorf("formatNumber(%s) = %q, want %q", lit, got, want)
		}
	}
}

// claim returns id's claim name, nil when it has none.
func claim(id *request.Identity, name string) any {
	v, _ := id.Claims.Get(name)
	return v
}
