package request

import (
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// RequestIDHeader carries the id that ties a response to its audit record.
const RequestIDHeader = "X-Request-Id"

// maxRequestID bounds an incoming request id that is kept.
const maxRequestID = 128

// RequestID returns the id of a request: incoming when it is well-formed
// (1 to 128 characters of letters, digits and "-._:"), else a new random
// one (32 hex digits). Clients may choose their id, never inject into logs.
func RequestID(incoming string) string {
	if validRequestID(incoming) {
		return incoming
	}
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}

func validRequestID(s string) bool {
	if s == "" || len(s) > maxRequestID {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '.', c == '_', c == ':':
		default:
			return false
		}
	}
	return true
}

// ClientIP returns remote.ip, the original client, the way Envoy derives
// it with xff_num_trusted_hops (Istio's numTrustedProxies): with trusted
// = 0 it is the peer; with trusted = N > 0 it is the Nth address from the
// right of X-Forwarded-For (all its header lines joined in order), or the
// peer when the header has fewer than N addresses or that entry is not an
// IP address. Entries to the left of it are whatever the client wrote and
// are never used.
func ClientIP(peer netip.Addr, xff []string, trusted int) netip.Addr {
	if trusted <= 0 || len(xff) == 0 {
		return peer
	}
	seen := 0
	for i := len(xff) - 1; i >= 0; i-- {
		line := xff[i]
		for line != "" {
			var entry string
			if j := strings.LastIndexByte(line, ','); j >= 0 {
				entry, line = line[j+1:], line[:j]
			} else {
				entry, line = line, ""
			}
			seen++
			if seen == trusted {
				ip, err := netip.ParseAddr(strings.TrimSpace(entry))
				if err != nil {
					return peer
				}
				return ip.Unmap()
			}
		}
	}
	return peer
}

// AddrPort parses "ip:port" as net/http gives addresses, unmapping
// IPv4-in-IPv6; the zero values when it is not one.
func AddrPort(s string) (netip.Addr, int) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return netip.Addr{}, 0
	}
	return ap.Addr().Unmap(), int(ap.Port())
}

// FromHTTP returns the attributes of a request idgate received itself
// (the reverse proxy; Envoy's HTTP ext_authz check requests): the target
// normalized as Istio does, source.ip from the connection, remote.ip per
// trusted proxies, destination from the local address. An absolute-form
// target ("http://host/p") is reduced to its path, and its authority
// replaces Host (RFC 9112 §3.2.2). The error is a *PathError or, for a
// method with a lower-case letter, a *MethodError: answer its Status()
// (400 or 404) and never forward the request.
func FromHTTP(r *http.Request, trustedProxies int) (*Attributes, error) {
	a := new(Attributes)
	if err := a.FromHTTP(r, trustedProxies); err != nil {
		return nil, err
	}
	return a, nil
}

// FromHTTP sets a to the attributes of r, exactly as the function
// FromHTTP returns them, for a caller that holds a in a larger value. It
// returns the same errors; a is then only partly set and must not be
// decided.
func (a *Attributes) FromHTTP(r *http.Request, trustedProxies int) error {
	if err := CheckMethod(r.Method); err != nil {
		return err
	}
	target := r.RequestURI
	host := r.Host
	if rest, ok := cutScheme(target); ok {
		authority, path, found := strings.Cut(rest, "/")
		host = authority
		target = "/" + path
		if !found {
			target = "/"
		}
	}
	path, err := NormalizePath(target)
	if err != nil {
		return err
	}
	*a = Attributes{
		Method: r.Method,
		Scheme: "http",
		Host:   host,
		Path:   path,
		Header: r.Header,
	}
	if _, q, ok := strings.Cut(target, "?"); ok {
		a.Query = q
	}
	if r.TLS != nil {
		a.Scheme = "https"
		a.SNI = r.TLS.ServerName
	}
	a.SourceIP, _ = AddrPort(r.RemoteAddr)
	a.RemoteIP = ClientIP(a.SourceIP, r.Header.Values("X-Forwarded-For"), trustedProxies)
	if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		a.DestinationIP, a.DestinationPort = localAddr(la)
	}
	return nil
}

// localAddr returns the address and port of la, as AddrPort would parse
// la.String(), without formatting it for a TCP address.
func localAddr(la net.Addr) (netip.Addr, int) {
	if ta, ok := la.(*net.TCPAddr); ok {
		ap := ta.AddrPort()
		if !ap.Addr().IsValid() {
			return netip.Addr{}, 0
		}
		return ap.Addr().Unmap(), int(ap.Port())
	}
	return AddrPort(la.String())
}

// cutScheme removes a leading "http://" or "https://" (any case).
func cutScheme(target string) (string, bool) {
	if target == "" || target[0] == '/' {
		return target, false // origin form, by far the most common
	}
	for _, s := range []string{"http://", "https://"} {
		if len(target) >= len(s) && strings.EqualFold(target[:len(s)], s) {
			return target[len(s):], true
		}
	}
	return target, false
}
