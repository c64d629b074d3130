package proxy

import (
	"net/url"
	"strings"
	"testing"

	"github.com/idgate/idgate/request"
)

// FuzzUpstreamTarget checks the request target the proxy writes upstream
// for any target a client sends: its path is exactly the normalized path,
// and it holds no byte that would end or split an HTTP/1.1 request line.
func FuzzUpstreamTarget(f *testing.F) {
	for _, s := range []string{
		"/a/../b?c=d", "/a%2Fb?x y", "//x?q", "/%zz?%zz", "/a\\b?\"<>", "/\xff?\xff",
		"/%2e%2e/x", "/a?b#c", "/a?#", "/?", "//%zz", "/a%", "/é?é=ü",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, target string) {
		p, err := request.NormalizePath(target)
		if err != nil {
			return
		}
		_, q, _ := strings.Cut(target, "?")
		u := &url.URL{Scheme: "http", Host: "upstream:8080"}
		setPath(u, p)
		u.RawQuery = escapeQuery(q)
		got := u.RequestURI()
		for i := 0; i < len(got); i++ {
			if c := got[i]; c <= ' ' || c >= 0x7f || c == '#' {
				t.Fatalf("target %q: upstream request target %q holds byte %#x", target, got, c)
			}
		}
		path, _, _ := strings.Cut(strings.TrimPrefix(got, "http://upstream:8080"), "?")
		if path != p {
			t.Fatalf("target %q: upstream path %q, want the normalized %q", target, path, p)
		}
		if strings.HasPrefix(got, "http://") && !strings.HasPrefix(p, "//") {
			t.Fatalf("target %q: absolute form %q for a path that does not start with //", target, got)
		}
	})
}
