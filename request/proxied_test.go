package request

import (
	"net/netip"
	"testing"
)

// The asking proxy (nginx, Traefik, Caddy, Envoy) is idgate's peer; what
// the request's own addresses were comes from its headers, believed only
// through --trusted-proxies.
func TestProxiedAddrs(t *testing.T) {
	proxy := netip.MustParseAddr("127.0.0.1")
	tests := []struct {
		name         string
		reported     string
		xff          []string
		trusted      int
		source, remo string
	}{
		{"no trusted proxies: the proxy itself", "203.0.113.9", []string{"203.0.113.9"}, 0, "127.0.0.1", "127.0.0.1"},
		{"X-Real-IP is the client", "203.0.113.9", nil, 1, "203.0.113.9", "203.0.113.9"},
		{"a forged X-Forwarded-For never becomes remote.ip", "203.0.113.9", []string{"127.0.0.1"}, 1, "203.0.113.9", "203.0.113.9"},
		{"a forged X-Forwarded-For under nginx's append", "203.0.113.9", []string{"127.0.0.1, 203.0.113.9"}, 1, "203.0.113.9", "203.0.113.9"},
		{"last X-Forwarded-For entry without X-Real-IP", "", []string{"127.0.0.1, 203.0.113.9"}, 1, "203.0.113.9", "203.0.113.9"},
		{"a balancer in front of nginx, nginx appends", "192.0.2.1", []string{"127.0.0.1, 203.0.113.9, 192.0.2.1"}, 2, "192.0.2.1", "203.0.113.9"},
		{"a balancer in front of nginx, nginx does not append", "192.0.2.1", []string{"127.0.0.1, 203.0.113.9"}, 2, "192.0.2.1", "203.0.113.9"},
		{"a balancer in front of Traefik", "", []string{"127.0.0.1", "203.0.113.9, 192.0.2.1"}, 2, "192.0.2.1", "203.0.113.9"},
		{"a short chain falls back to source", "192.0.2.1", nil, 3, "192.0.2.1", "192.0.2.1"},
		{"nothing reported: unknown, not the proxy", "", nil, 1, "invalid IP", "invalid IP"},
		{"garbage last entry and no X-Real-IP: unknown", "", []string{"203.0.113.9, unknown"}, 1, "invalid IP", "invalid IP"},
		{"garbage last entry with X-Real-IP", "203.0.113.9", []string{"unknown"}, 1, "203.0.113.9", "203.0.113.9"},
		{"mapped IPv4 is unmapped", "::ffff:203.0.113.9", nil, 1, "203.0.113.9", "203.0.113.9"},
		{"IPv6", "", []string{"2001:db8::7"}, 1, "2001:db8::7", "2001:db8::7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var reported netip.Addr
			if tt.reported != "" {
				reported = netip.MustParseAddr(tt.reported)
			}
			source, remote := ProxiedAddrs(proxy, reported, tt.xff, tt.trusted)
			if source.String() != tt.source || remote.String() != tt.remo {
				t.Errorf("ProxiedAddrs = (%s, %s), want (%s, %s)", source, remote, tt.source, tt.remo)
			}
		})
	}
}

// The caller's X-Forwarded-For lines are not modified.
func TestProxiedAddrsKeepsHeader(t *testing.T) {
	xff := make([]string, 1, 4)
	xff[0] = "198.51.100.7"
	ProxiedAddrs(netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("203.0.113.9"), xff, 2)
	if got := xff[:cap(xff)][1]; got != "" {
		t.Errorf("ProxiedAddrs wrote %q into the caller's slice", got)
	}
}
