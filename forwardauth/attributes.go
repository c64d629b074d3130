package forwardauth

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"

	"github.com/idgate/idgate/request"
)

// A dialect is how one kind of proxy describes the original request in
// the headers of its subrequest.
type dialect struct {
	// frontend is request.Attributes.Frontend.
	frontend string
	// method, uri and host name the headers that carry the original
	// method, request target (path and query) and authority; all three
	// are required, except that an absent host header falls back to
	// Host when hostFallback is set.
	method, uri, host string
	hostFallback      bool
	// proto names the header with the original scheme; "" for none.
	proto string
	// realIP names the header with the address the proxy received the
	// request from, when the proxy has one besides X-Forwarded-For.
	realIP string
	// rejectStatus is the status of a check request that cannot be
	// decided: what the proxy passes on to the client as a refusal.
	rejectStatus func(err error) int
}

// nginx is nginx's auth_request, configured as docs/forward-auth.md says.
var nginx = dialect{
	frontend:     "nginx",
	method:       "X-Original-Method",
	uri:          "X-Original-Uri",
	host:         "X-Original-Host",
	hostFallback: true,
	realIP:       "X-Real-Ip",
	// auth_request passes 401 and 403 on and turns every other status
	// into a 500; a request that cannot be authorized is refused.
	rejectStatus: func(error) int { return http.StatusForbidden },
}

// forwardAuth is Traefik's ForwardAuth middleware and Caddy's
// forward_auth directive, which send the same headers.
var forwardAuth = dialect{
	frontend: "forward-auth",
	method:   "X-Forwarded-Method",
	uri:      "X-Forwarded-Uri",
	host:     "X-Forwarded-Host",
	proto:    "X-Forwarded-Proto",
	// Both proxies return the status to the client as it is: the
	// status the reverse proxy would answer.
	rejectStatus: func(err error) int {
		if pe, ok := errors.AsType[*request.PathError](err); ok {
			return pe.Status()
		}
		return http.StatusBadRequest // a *request.MethodError included
	},
}

// errCheckRequest is wrapped by the errors of check requests that do not
// describe the original request (a required header missing, repeated or
// malformed); httpfront.InvalidCheckRequest is their reason code.
var errCheckRequest = errors.New("the check request does not describe the original request")

// attributes returns the attributes of the original request the check
// request r describes. The error is a *request.PathError for a request
// target that cannot be authorized, else it wraps errCheckRequest.
func (d *dialect) attributes(r *http.Request, trusted int) (*request.Attributes, error) {
	method, err := single(r.Header, d.method, true)
	if err != nil {
		return nil, err
	}
	if !isToken(method) {
		return nil, fmt.Errorf("%w: %s %q is not an HTTP method", errCheckRequest, d.method, cut(method))
	}
	if err := request.CheckMethod(method); err != nil {
		return nil, err
	}
	target, err := single(r.Header, d.uri, true)
	if err != nil {
		return nil, err
	}
	path, err := request.NormalizePath(target)
	if err != nil {
		return nil, err
	}
	host, err := single(r.Header, d.host, !d.hostFallback)
	if err != nil {
		return nil, err
	}
	if host == "" {
		host = r.Host
	}
	a := &request.Attributes{
		Method:   method,
		Scheme:   "http",
		Host:     host,
		Path:     path,
		Header:   r.Header,
		Frontend: d.frontend,
	}
	if _, q, ok := strings.Cut(target, "?"); ok {
		a.Query = q
	}
	peer, _ := request.AddrPort(r.RemoteAddr)
	if trusted <= 0 {
		a.SourceIP, a.RemoteIP = peer, peer
		return a, nil
	}
	// The proxy is trusted: believe what it says about the request.
	if d.proto != "" && strings.EqualFold(r.Header.Get(d.proto), "https") {
		a.Scheme = "https"
	}
	var reported netip.Addr
	if d.realIP != "" {
		v, err := single(r.Header, d.realIP, false)
		if err != nil {
			return nil, err
		}
		if v != "" {
			ip, perr := netip.ParseAddr(strings.TrimSpace(v))
			if perr != nil {
				return nil, fmt.Errorf("%w: %s %q is not an IP address", errCheckRequest, d.realIP, cut(v))
			}
			reported = ip
		}
	}
	a.SourceIP, a.RemoteIP = request.ProxiedAddrs(peer, reported, r.Header.Values("X-Forwarded-For"), trusted)
	return a, nil
}

// single returns the one value of the header name: an error when it is
// repeated (which value the proxy meant is unknowable), or absent while
// required.
func single(h http.Header, name string, required bool) (string, error) {
	vs := h[name]
	switch {
	case len(vs) > 1:
		return "", fmt.Errorf("%w: %s is repeated", errCheckRequest, name)
	case len(vs) == 0 || vs[0] == "":
		if required {
			return "", fmt.Errorf("%w: %s is missing", errCheckRequest, name)
		}
		return "", nil
	}
	return vs[0], nil
}

// isToken reports whether s is an RFC 9110 token, the syntax of a method.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// cut shortens a header value quoted in an error.
func cut(s string) string {
	const max = 64
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}
