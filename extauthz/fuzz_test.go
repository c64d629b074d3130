package extauthz

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/idgate/idgate/request"
)

// FuzzCheckAttributes feeds CheckRequests with arbitrary strings where
// Envoy puts what the client sent (path, host, headers) or what the mesh
// reports (addresses, principal). Reading them never panics, refuses with
// a typed error, or yields a normalized path, a source.ip that is the
// source address, and a remote.ip a client-written X-Forwarded-For entry
// cannot set through one trusted proxy.
func FuzzCheckAttributes(f *testing.F) {
	f.Add("GET", "/api/orders?page=2", "orders.example", "authorization", "Bearer x", "198.51.100.20", "spiffe://cluster.local/ns/foo/sa/bar", "127.0.0.1, 198.51.100.20", "", uint8(1))
	f.Add("", "/a/../%2e%2e/b", "", ":path", "/x", "::ffff:10.0.0.1", "CN=x", "", "203.0.113.7", uint8(2))
	f.Add("POST", "*", "h:1", "", "", "not-an-ip", "spiffe://td/ns/", "garbage", "garbage", uint8(0))
	f.Add("GET", "/a%00b#c", "h", "X-Forwarded-For", "1.2.3.4", "", "", "1.2.3.4,,", " 2001:db8::1 ", uint8(1))
	f.Fuzz(func(t *testing.T, method, path, host, hname, hvalue, source, principal, xff, external string, trusted uint8) {
		headers := map[string]string{hname: hvalue, "x-envoy-external-address": external}
		if xff != "" {
			headers["x-forwarded-for"] = xff
		}
		req := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
			Source: &authv3.AttributeContext_Peer{
				Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
					Address: source, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 1},
				}}},
				Principal: principal,
			},
			Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
				Method: method, Path: path, Host: host, Headers: headers,
			}},
		}}
		a, err := checkAttributes(req, int(trusted))
		if err != nil {
			var pe *request.PathError
			var me *request.MethodError
			if !errors.Is(err, errCheckRequest) && !errors.As(err, &pe) && !errors.As(err, &me) {
				t.Fatalf("untyped error %T: %v", err, err)
			}
			return
		}
		if again, err := request.NormalizePath(a.Path); err != nil || again != a.Path {
			t.Fatalf("path %q is not normalized (%q, %v)", a.Path, again, err)
		}
		for name := range a.Header {
			if strings.HasPrefix(name, ":") {
				t.Fatalf("pseudo-header %q among the headers", name)
			}
		}
		src, err := netip.ParseAddr(source)
		if err == nil && a.SourceIP != src.Unmap() || err != nil && a.SourceIP.IsValid() {
			t.Fatalf("source.ip %s from source address %q", a.SourceIP, source)
		}
		_, extErr := netip.ParseAddr(strings.TrimSpace(external))
		if trusted == 0 || trusted == 1 && extErr != nil {
			if a.RemoteIP != a.SourceIP {
				t.Fatalf("remote.ip %s, source.ip %s with %d trusted proxies and no usable x-envoy-external-address", a.RemoteIP, a.SourceIP, trusted)
			}
		}
		if p, ok := strings.CutPrefix(principal, spiffePrefix); ok && a.SourcePrincipal != p {
			t.Fatalf("principal %q from %q", a.SourcePrincipal, principal)
		}
	})
}
