package request

import (
	"net/netip"
	"slices"
	"strings"
)

// ProxiedAddrs returns source.ip and remote.ip of a request that a proxy
// received and then asked idgate about: nginx auth_request, Traefik
// ForwardAuth, Caddy forward_auth, Envoy's HTTP ext_authz. idgate's TCP
// peer is then the asking proxy, and what the request's own addresses
// were only the proxy can say, in headers.
//
// peer is idgate's TCP peer. reported is the address the proxy says it
// received the request from, when it has a header of its own for that
// (nginx's X-Real-IP set to $remote_addr), else the zero Addr. xff are the
// X-Forwarded-For header lines, in order. trusted is --trusted-proxies,
// counting the asking proxy itself:
//
//   - trusted <= 0: no header is believed. source.ip and remote.ip are
//     both peer, the asking proxy.
//   - trusted >= 1: the asking proxy is believed about the address it
//     received the request from: reported, else the last X-Forwarded-For
//     entry (the address Traefik, Caddy, Envoy and nginx's
//     $proxy_add_x_forwarded_for append). That is source.ip. The
//     forwarding chain is X-Forwarded-For ending with that address
//     (reported is appended unless X-Forwarded-For already ends with it),
//     and remote.ip is its trusted-th entry from the right (ClientIP), so
//     with trusted = 1 it is source.ip and nothing a client wrote is used.
//     When the proxy reports no address at all, both are the zero Addr
//     (unknown): ipBlocks and remoteIpBlocks then never match, rather than
//     matching the proxy.
func ProxiedAddrs(peer, reported netip.Addr, xff []string, trusted int) (source, remote netip.Addr) {
	if trusted <= 0 {
		return peer, peer
	}
	last, lastOK := lastForwarded(xff)
	switch {
	case reported.IsValid():
		source = reported.Unmap()
		if !lastOK || last != source {
			xff = append(slices.Clip(xff), source.String())
		}
	case lastOK:
		source = last
	default:
		return netip.Addr{}, netip.Addr{}
	}
	return source, ClientIP(source, xff, trusted)
}

// lastForwarded returns the last X-Forwarded-For entry of xff as an
// address; ok is false when there is none or it is not an IP address.
func lastForwarded(xff []string) (netip.Addr, bool) {
	if len(xff) == 0 {
		return netip.Addr{}, false
	}
	line := xff[len(xff)-1]
	if i := strings.LastIndexByte(line, ','); i >= 0 {
		line = line[i+1:]
	}
	ip, err := netip.ParseAddr(strings.TrimSpace(line))
	if err != nil {
		return netip.Addr{}, false
	}
	return ip.Unmap(), true
}
