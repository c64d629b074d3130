package policy

import (
	"net/http"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/idgate/idgate/request"
)

func attrs(method, path string) *request.Attributes {
	return &request.Attributes{
		Method:   method,
		Host:     "example.com",
		Path:     path,
		Header:   http.Header{},
		SourceIP: netip.MustParseAddr("127.0.0.1"),
		RemoteIP: netip.MustParseAddr("127.0.0.1"),
	}
}

// The table of istio-semantics.md §4.9 (generator.go
// requestPrincipalGenerator.extendedPrincipal, Istio ≥ 1.22).
func TestPrincipalMatcher(t *testing.T) {
	cases := []struct {
		pattern, iss, sub string
		want              bool
	}{
		{"*", "a", "b", true},
		{"*", "a", "", false},
		{"*", "", "b", false},
		// "*X" with a '/': iss suffix (or any for "*"), exact sub.
		{"*/sub1", "https://any", "sub1", true},
		{"*/sub1", "https://any", "sub12", false},
		{"*tenant/v2.0/sub1", "https://login/tenant/v2.0", "sub1", true},
		{"*tenant/v2.0/sub1", "https://login/other/v2.0", "sub1", false},
		// "*X" without '/': any iss, sub suffix.
		{"*-oid", "https://any", "abc-oid", true},
		{"*-oid", "https://any", "abc-id", false},
		// "X*" with a '/': exact iss, sub prefix (or non-empty for "*").
		{"https://iss/*", "https://iss", "x", true},
		{"https://iss/*", "https://iss/", "x", false},
		{"https://iss/ab*", "https://iss", "abc", true},
		{"https://iss/ab*", "https://iss", "ba", false},
		{"https://iss//*", "https://iss/", "x", true}, // Azure v1
		// "X*" without '/': iss prefix, non-empty sub.
		{"https:*", "https://iss", "x", true},
		{"https:*", "http://iss", "x", false},
		// "iss/sub": both exact, split at the last '/'.
		{"https://sts.windows.net/t//s", "https://sts.windows.net/t/", "s", true},
		{"https://sts.windows.net/t//s", "https://sts.windows.net/t", "/s", false},
		{"a/b/c", "a/b", "c", true},
		{"a/b/c", "a", "b/c", false}, // a sub with '/' cannot be matched exactly (istio/istio#52217)
		{"noslash", "noslash", "x", false},
	}
	for _, c := range cases {
		m := newPrincipalMatcher(c.pattern)
		if got := m.match(c.iss, c.sub); got != c.want {
			t.Errorf("%q vs iss %q sub %q: %v, want %v", c.pattern, c.iss, c.sub, got, c.want)
		}
	}
}

// accountRegex is Istio's service account regex (generator.go
// serviceAccountRegex) with the names quoted, as idgate compares them.
func accountRegex(ns, sa string) *regexp.Regexp {
	return regexp.MustCompile(`^spiffe://.+/ns/` + regexp.QuoteMeta(ns) + `/(.+/|)sa/` + regexp.QuoteMeta(sa) + `(/.+)?$`)
}

func TestAccountMatcher(t *testing.T) {
	principals := []string{
		"cluster.local/ns/foo/sa/bar",
		"cluster.local/ns/foo/sa/bar/extra",
		"cluster.local/ns/foo/sa/bar/",
		"cluster.local/ns/foo/sa/barn",
		"cluster.local/ns/foo/x/sa/bar",
		"cluster.local/ns/foo//sa/bar",
		"cluster.local/ns/foox/sa/bar",
		"/ns/foo/sa/bar",
		"a/ns/other/ns/foo/sa/bar",
		"a/ns/foo/sa/x/ns/foo/sa/bar",
		"cluster.local/ns/foo/sa/bar\n",
		"td/ns/foo/sa/sa/bar",
		"",
	}
	m := newAccountMatcher("foo/bar", "default")
	re := accountRegex("foo", "bar")
	for _, p := range principals {
		if got, want := m.match(p), re.MatchString("spiffe://"+p); got != want {
			t.Errorf("%q: %v, Istio's regex says %v", p, got, want)
		}
	}
	local := newAccountMatcher("bar", "foo")
	if !local.match("cluster.local/ns/foo/sa/bar") || local.match("cluster.local/ns/default/sa/bar") {
		t.Errorf("a service account without namespace must mean the policy's namespace")
	}
}

func FuzzAccountMatcher(f *testing.F) {
	f.Add("cluster.local/ns/foo/sa/bar", "foo", "bar")
	f.Add("a/ns/foo/x/sa/bar/y", "foo", "bar")
	f.Add("td/ns/a.b/sa/c", "a.b", "c")
	f.Fuzz(func(t *testing.T, principal, ns, sa string) {
		if ns == "" || sa == "" || strings.Contains(ns+sa, "/") || !utf8.ValidString(ns) || !utf8.ValidString(sa) {
			return // not a service account value; the regex oracle needs UTF-8
		}
		m := newAccountMatcher(ns+"/"+sa, "default")
		if got, want := m.match(principal), accountRegex(ns, sa).MatchString("spiffe://"+principal); got != want {
			t.Fatalf("principal %q ns %q sa %q: %v, regex %v", principal, ns, sa, got, want)
		}
	})
}

func TestGlob(t *testing.T) {
	cases := []struct {
		pattern, s string
		want       bool
	}{
		{"web", "web", true},
		{"web", "web2", false},
		{"*", "anything", true},
		{"team-*", "team-a", true},
		{"team-*", "team-", true},
		{"*-prod", "a-prod", true},
		{"a*b*c", "abc", true},
		{"a*b*c", "axxbyyc", true},
		{"a*b*c", "axxbyy", false},
		{"a*a", "a", false},
		{"a*a", "aa", true},
	}
	for _, c := range cases {
		g := newGlob(c.pattern)
		if got := g.match(c.s); got != c.want {
			t.Errorf("glob %q vs %q: %v, want %v", c.pattern, c.s, got, c.want)
		}
	}
}

// templateRegex is Envoy's translation of a path template
// (uri_template_internal.cc toRegexPattern): "{*}" is one or more
// template characters, "{**}" zero or more with '/'.
func templateRegex(p string) *regexp.Regexp {
	const class = `a-zA-Z0-9\-._~%!$&'()+,;:@=`
	var b strings.Builder
	b.WriteString("^")
	for i, seg := range strings.Split(p, "/") {
		if i > 0 {
			b.WriteString("/")
		}
		switch seg {
		case "{*}":
			b.WriteString("[" + class + "]+")
		case "{**}":
			b.WriteString("[" + class + "/]*")
		default:
			b.WriteString(regexp.QuoteMeta(seg))
		}
	}
	b.WriteString("$")
	return regexp.MustCompile(b.String())
}

var templateSamples = []string{
	"/", "/a", "/a/", "/a/b", "/a/b/", "/a//b", "/a/b/c", "/a/b/c/d", "/foo/x/bar/", "/foo/x/bar/y/z",
	"/foo//bar/x", "/store//cart", "/store/a/b/cart", "/store/cart", "/a=b/c", "/a*b/c", "/a%2Fb/c", "/a b/c",
	"/allow/admin", "/allow/admin/", "/allow/admin/x/y",
}

func TestPathTemplateMatchesEnvoy(t *testing.T) {
	for _, p := range []string{
		"/{*}", "/{**}", "/a/{*}", "/a/{**}", "/a/{*}/", "/a/{**}/", "/{*}/b", "/{**}/b", "/{*}/{*}/{**}",
		"/foo/{*}/bar/{**}", "/store/{**}/cart", "/allow/admin/{**}", "/{*}/b/{**}/c/d",
	} {
		tmpl, err := parseTemplate(p)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		re := templateRegex(p)
		for _, s := range templateSamples {
			if got, want := tmpl.match(s), re.MatchString(s); got != want {
				t.Errorf("template %q vs %q: %v, Envoy's regex %v", p, s, got, want)
			}
		}
	}
}

func FuzzPathTemplate(f *testing.F) {
	f.Add("/foo/{*}/bar/{**}", "/foo/x/bar/y")
	f.Add("/store/{**}/cart", "/store//cart")
	f.Add("/{*}/", "/a/")
	f.Fuzz(func(t *testing.T, pattern, path string) {
		tmpl, err := parseTemplate(pattern)
		if err != nil {
			return
		}
		if got, want := tmpl.match(path), templateRegex(pattern).MatchString(path); got != want {
			t.Fatalf("template %q vs %q: %v, Envoy's regex %v", pattern, path, got, want)
		}
	})
}

// A repeated header is matched as Envoy joins it: with ",".
func FuzzStrMatcherJoined(f *testing.F) {
	f.Add("1,*", "1", "2", "3")
	f.Add("*,3", "1", "", "3")
	f.Add("a,b", "a", "b", "")
	f.Fuzz(func(t *testing.T, pattern, v1, v2, v3 string) {
		m := newStrMatcher(pattern, false)
		for _, vals := range [][]string{{v1}, {v1, v2}, {v1, v2, v3}} {
			joined := strings.Join(vals, ",")
			want := m.match(joined)
			if m.kind == strPresent {
				want = joined != ""
			}
			if got := m.matchJoined(vals, ','); got != want {
				t.Fatalf("pattern %q vs %q: %v, joined %v", pattern, vals, got, want)
			}
		}
	})
}

// Hosts compare case-insensitively in ASCII only, as Envoy's ignore_case
// does (absl::EqualsIgnoreCase), not with Unicode case folding.
func TestHostsFoldASCIIOnly(t *testing.T) {
	m := newStrMatcher("*.Example.COM", true)
	for s, want := range map[string]bool{
		"api.example.com": true,
		"API.EXAMPLE.COM": true,
		"api.exampLe.com": true,
		"api.example.co":  false,
	} {
		if got := m.match(s); got != want {
			t.Errorf("%q: %v, want %v", s, got, want)
		}
	}
	if m := newStrMatcher("\u00e9.example.com", true); m.match("\u00c9.example.com") {
		t.Errorf("non-ASCII letters must not fold")
	}
}
