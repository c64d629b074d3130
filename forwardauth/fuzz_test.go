package forwardauth

import (
	"errors"
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/idgate/idgate/request"
)

// FuzzForwardAuthAttributes feeds arbitrary header values, as a client
// or a misconfigured proxy could send them, to both dialects. Whatever
// they hold, reading them never panics, refuses with a typed error, or
// yields attributes whose path is normalized, whose method is a token,
// and whose addresses follow the trusted-proxy rules: a client-written
// X-Forwarded-For entry never becomes remote.ip through one trusted
// proxy.
func FuzzForwardAuthAttributes(f *testing.F) {
	f.Add(true, "GET", "/api/orders?x=1", "orders.example", "https", "203.0.113.9", "127.0.0.1, 198.51.100.7", uint8(1))
	f.Add(false, "POST", "/a/../b/%2e%2e/c?access_token=x", "h:8080", "http", "", "198.51.100.7", uint8(1))
	f.Add(true, "GET", "/a%00b", "", "", "::ffff:127.0.0.1", "", uint8(0))
	f.Add(false, "G E T", "*", "h", "HTTPS", "x", "unknown,", uint8(2))
	f.Add(true, "", "", "", "", "", "", uint8(3))
	f.Add(true, "GET", "/a#b", "h", "", "not-an-ip", "1.2.3.4,,5.6.7.8", uint8(2))
	f.Add(false, "GET", "/\\x/%zz/%%30", "h", "", "", " 2001:db8::1 ", uint8(1))
	f.Fuzz(func(t *testing.T, nginxStyle bool, method, uri, host, proto, realIP, xff string, trusted uint8) {
		d := &forwardAuth
		if nginxStyle {
			d = &nginx
		}
		r := &http.Request{Method: http.MethodGet, RequestURI: d.frontend, Header: http.Header{}, RemoteAddr: "127.0.0.1:40000", Host: "idgate"}
		set := func(name, v string) {
			if v != "" {
				r.Header[name] = []string{v}
			}
		}
		set(d.method, method)
		set(d.uri, uri)
		set(d.host, host)
		if d.proto != "" {
			set(d.proto, proto)
		}
		if d.realIP != "" {
			set(d.realIP, realIP)
		}
		set("X-Forwarded-For", xff)

		a, err := d.attributes(r, int(trusted))
		if err != nil {
			var pe *request.PathError
			var me *request.MethodError
			if !errors.Is(err, errCheckRequest) && !errors.As(err, &pe) && !errors.As(err, &me) {
				t.Fatalf("untyped error %T: %v", err, err)
			}
			if st := d.rejectStatus(err); st < 400 || st > 499 {
				t.Fatalf("refusal status %d", st)
			}
			if nginxStyle && d.rejectStatus(err) != http.StatusForbidden {
				t.Fatal("/nginx refuses with a status nginx does not pass on")
			}
			return
		}
		if a.Method != method || !isToken(a.Method) {
			t.Fatalf("method %q from %q", a.Method, method)
		}
		if again, err := request.NormalizePath(a.Path); err != nil || again != a.Path {
			t.Fatalf("path %q is not normalized (%q, %v)", a.Path, again, err)
		}
		if _, q, ok := strings.Cut(uri, "?"); ok != (a.Query != "" || strings.HasSuffix(uri, "?")) || a.Query != q {
			t.Fatalf("query %q from target %q", a.Query, uri)
		}
		peer := netip.MustParseAddr("127.0.0.1")
		switch {
		case trusted == 0:
			if a.SourceIP != peer || a.RemoteIP != peer {
				t.Fatalf("no trusted proxy, yet addresses (%s, %s) are not the peer's", a.SourceIP, a.RemoteIP)
			}
		case trusted == 1:
			if a.RemoteIP != a.SourceIP {
				t.Fatalf("one trusted proxy, yet remote.ip %s is not source.ip %s", a.RemoteIP, a.SourceIP)
			}
			if ip, err := netip.ParseAddr(strings.TrimSpace(realIP)); nginxStyle && err == nil && a.SourceIP != ip.Unmap() {
				t.Fatalf("source.ip %s, X-Real-IP %s", a.SourceIP, ip)
			}
		}
	})
}
