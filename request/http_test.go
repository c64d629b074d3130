package request

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

// remote.ip follows X-Forwarded-For only through the trusted hops
// (istio-semantics.md §4.13: "with N>0 the client is the Nth address from
// the right of XFF; if XFF is missing/short, the connection source is
// used; default N=0").
func TestClientIP(t *testing.T) {
	peer := netip.MustParseAddr("10.0.0.1")
	tests := []struct {
		name    string
		xff     []string
		trusted int
		want    string
	}{
		{"no trusted proxies ignores a forged header", []string{"127.0.0.1"}, 0, "10.0.0.1"},
		{"one hop takes the rightmost", []string{"127.0.0.1, 203.0.113.9"}, 1, "203.0.113.9"},
		{"two hops", []string{"198.51.100.7, 203.0.113.9, 192.0.2.1"}, 2, "203.0.113.9"},
		{"header lines are joined in order", []string{"198.51.100.7", "203.0.113.9"}, 1, "203.0.113.9"},
		{"header lines are joined in order, two hops", []string{"198.51.100.7", "203.0.113.9"}, 2, "198.51.100.7"},
		{"too few entries falls back to the peer", []string{"203.0.113.9"}, 2, "10.0.0.1"},
		{"garbage entry falls back to the peer", []string{"127.0.0.1, not-an-ip"}, 1, "10.0.0.1"},
		{"empty entry falls back to the peer", []string{"127.0.0.1,"}, 1, "10.0.0.1"},
		{"no header", nil, 1, "10.0.0.1"},
		{"ipv6", []string{"2001:db8::1"}, 1, "2001:db8::1"},
		{"mapped ipv4 is unmapped", []string{"::ffff:203.0.113.9"}, 1, "203.0.113.9"},
		{"spaces are trimmed", []string{"  203.0.113.9  "}, 1, "203.0.113.9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ClientIP(peer, tt.xff, tt.trusted); got.String() != tt.want {
				t.Errorf("ClientIP = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestRequestID(t *testing.T) {
	for _, keep := range []string{"abc", "0f8e-11:22.x_y", strings.Repeat("a", 128)} {
		if got := RequestID(keep); got != keep {
			t.Errorf("RequestID(%q) = %q, want it kept", keep, got)
		}
	}
	for _, bad := range []string{"", "a b", "x\ny", "<script>", strings.Repeat("a", 129), "é"} {
		got := RequestID(bad)
		if got == bad || len(got) != 32 || !validRequestID(got) {
			t.Errorf("RequestID(%q) = %q, want a new 32-hex-digit id", bad, got)
		}
	}
	if RequestID("") == RequestID("") {
		t.Error("two new ids are equal")
	}
}

func TestFromHTTP(t *testing.T) {
	r := httptest.NewRequest("POST", "/app/%2E./admin?x=1", nil)
	r.RemoteAddr = "127.0.0.2:5555"
	r.Host = "orders.example.com:8443"
	r.Header.Set("X-Forwarded-For", "127.0.0.1")
	r.TLS = &tls.ConnectionState{ServerName: "orders.example.com"}
	r = r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, &net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 8443}))
	a, err := FromHTTP(r, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := Attributes{
		Method: "POST", Scheme: "https", Host: "orders.example.com:8443", Path: "/admin", Query: "x=1",
		SourceIP: netip.MustParseAddr("127.0.0.2"), RemoteIP: netip.MustParseAddr("127.0.0.2"),
		DestinationIP: netip.MustParseAddr("127.0.0.1"), DestinationPort: 8443, SNI: "orders.example.com",
	}
	a.Header = nil
	if !reflect.DeepEqual(*a, want) {
		t.Errorf("FromHTTP =\n%+v\nwant\n%+v", *a, want)
	}
}

func TestFromHTTPAbsoluteForm(t *testing.T) {
	r := httptest.NewRequest("GET", "/", nil)
	r.RequestURI = "http://admin.example.com/a/../admin?q"
	r.Host = "public.example.com"
	a, err := FromHTTP(r, 0)
	if err != nil {
		t.Fatal(err)
	}
	if a.Host != "admin.example.com" || a.Path != "/admin" || a.Query != "q" {
		t.Errorf("host, path, query = %q, %q, %q; want the target's authority, normalized path and query", a.Host, a.Path, a.Query)
	}
}

func TestFromHTTPRejectsBadTargets(t *testing.T) {
	for _, target := range []string{"*", "/a%00b", "/a#frag"} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RequestURI = target
		_, err := FromHTTP(r, 0)
		var pe *PathError
		if !errors.As(err, &pe) {
			t.Errorf("FromHTTP(%q) error = %v, want a *PathError", target, err)
		}
	}
}

// localAddr reads a TCP address without formatting it, and must read it
// as AddrPort reads the formatted address.
func TestLocalAddrMatchesAddrPort(t *testing.T) {
	for _, la := range []net.Addr{
		&net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 8443},
		&net.TCPAddr{IP: net.IPv4(10, 1, 2, 3).To4(), Port: 80},
		&net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 443},
		&net.TCPAddr{IP: net.ParseIP("::ffff:192.0.2.1"), Port: 1},
		&net.TCPAddr{IP: net.ParseIP("fe80::1"), Port: 8080, Zone: "eth0"},
		&net.TCPAddr{Port: 8080},
		&net.TCPAddr{},
		&net.UnixAddr{Name: "/run/idgate.sock", Net: "unix"},
	} {
		ip, port := localAddr(la)
		wantIP, wantPort := AddrPort(la.String())
		if ip != wantIP || port != wantPort {
			t.Errorf("localAddr(%v) = %v, %d; want %v, %d", la, ip, port, wantIP, wantPort)
		}
	}
}

// The method fills in what the function returns.
func TestAttributesFromHTTP(t *testing.T) {
	for _, target := range []string{"/a/../b?x=1", "http://other.example/p", "/%00"} {
		r := httptest.NewRequest("GET", target, nil)
		r.RemoteAddr = "198.51.100.7:4321"
		r.Header.Set("X-Forwarded-For", "203.0.113.9")
		want, wantErr := FromHTTP(r, 1)
		var got Attributes
		err := got.FromHTTP(r, 1)
		if (err == nil) != (wantErr == nil) || err != nil && err.Error() != wantErr.Error() {
			t.Errorf("%s: error %v, want %v", target, err, wantErr)
			continue
		}
		if err == nil && !reflect.DeepEqual(&got, want) {
			t.Errorf("%s: %+v, want %+v", target, got, *want)
		}
	}
}
