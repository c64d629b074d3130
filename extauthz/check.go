package extauthz

import (
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/netip"
	"net/textproto"
	"slices"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/idgate/idgate/request"
)

// errCheckRequest is wrapped by the errors of checks that do not describe
// an HTTP request; httpfront.InvalidCheckRequest is their reason code.
var errCheckRequest = errors.New("the check does not describe an HTTP request")

// spiffePrefix starts the URI SAN of an Istio workload certificate.
const spiffePrefix = "spiffe://"

// checkAttributes returns the attributes of the request a CheckRequest
// describes, as Envoy's ext_authz filter fills it in (Istio's CUSTOM
// action included):
//
//   - method, host (:authority), scheme and the request target from
//     attributes.request.http; the target ("path", which carries the
//     query) is normalized again, idempotently after Istio's BASE
//     normalization, and a target that cannot be authorized is a
//     *request.PathError;
//   - headers from http.headers (lower-case, repeated ones joined by
//     Envoy), or from http.header_map when Envoy sends raw headers; the
//     pseudo-headers are not headers;
//   - source.ip from attributes.source.address: the peer Envoy received
//     the request from; remote.ip per trusted (Options.TrustedProxies);
//   - source.principal from attributes.source.principal without its
//     "spiffe://", and source.namespace from its "/ns/<namespace>/";
//   - destination.ip and destination.port from
//     attributes.destination.address, connection.sni from tls_session.
//
// Header values are taken as Envoy sends them; the engine never trusts
// them for identity.
func checkAttributes(req *authv3.CheckRequest, trusted int) (*request.Attributes, error) {
	ac := req.GetAttributes()
	h := ac.GetRequest().GetHttp()
	if h == nil {
		return nil, fmt.Errorf("%w: no attributes.request.http (a network-level check?)", errCheckRequest)
	}
	header := checkHeaders(h)
	method := h.GetMethod()
	if method == "" {
		method = h.GetHeaders()[":method"]
	}
	if method == "" {
		return nil, fmt.Errorf("%w: no method", errCheckRequest)
	}
	if err := request.CheckMethod(method); err != nil {
		return nil, err
	}
	target := h.GetPath()
	if target == "" {
		target = h.GetHeaders()[":path"]
	}
	path, err := request.NormalizePath(target)
	if err != nil {
		return nil, err
	}
	host := h.GetHost()
	if host == "" {
		host = h.GetHeaders()[":authority"]
	}
	a := &request.Attributes{
		Method:   method,
		Scheme:   "http",
		Host:     host,
		Path:     path,
		Header:   header,
		SNI:      ac.GetTlsSession().GetSni(),
		Frontend: "extauthz-grpc",
	}
	if strings.EqualFold(h.GetScheme(), "https") {
		a.Scheme = "https"
	}
	if _, q, ok := strings.Cut(target, "?"); ok {
		a.Query = q
	}
	a.SourceIP, _ = socketAddress(ac.GetSource().GetAddress())
	if a.SourceIP.IsValid() {
		// Without a source address (a pipe, an internal listener) the
		// chain has no trusted end: remote.ip is unknown too.
		_, a.RemoteIP = request.ProxiedAddrs(a.SourceIP, a.SourceIP, header.Values("X-Forwarded-For"), trusted)
	}
	a.RemoteIP = externalAddress(a.RemoteIP, header.Get(externalAddressHeader), trusted)
	a.DestinationIP, a.DestinationPort = socketAddress(ac.GetDestination().GetAddress())
	a.SourcePrincipal, a.SourceNamespace = principal(ac.GetSource().GetPrincipal())
	return a, nil
}

// checkHeaders returns the headers of the checked request with canonical
// names, without the HTTP/2 pseudo-headers.
func checkHeaders(h *authv3.AttributeContext_HttpRequest) http.Header {
	if raw := h.GetHeaderMap().GetHeaders(); len(raw) > 0 {
		// encode_raw_headers: one entry per header line, values in
		// raw_value (value when an older Envoy filled that in).
		out := make(http.Header, len(raw))
		for _, hv := range raw {
			addHeader(out, hv.GetKey(), rawValue(hv))
		}
		return out
	}
	m := h.GetHeaders()
	// Envoy's keys are distinct lower-case names, which stay distinct in
	// canonical form: each name gets one value, whatever the order. The
	// values share one array.
	out := make(http.Header, len(m))
	values := make([]string, len(m))
	for k, v := range m {
		if k == "" || k[0] == ':' {
			continue
		}
		name := textproto.CanonicalMIMEHeaderKey(k)
		if _, dup := out[name]; dup {
			return sortedHeaders(m)
		}
		values[0] = v
		out[name], values = values[:1:1], values[1:]
	}
	return out
}

// sortedHeaders returns the headers of m with canonical names. In a map
// whose names differ in case alone, they are taken in sorted order, so
// that the same check always gets the same decision.
func sortedHeaders(m map[string]string) http.Header {
	out := make(http.Header, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		addHeader(out, k, m[k])
	}
	return out
}

func rawValue(hv *corev3.HeaderValue) string {
	if v := hv.GetRawValue(); len(v) > 0 {
		return string(v)
	}
	return hv.GetValue()
}

func addHeader(h http.Header, name, value string) {
	if name == "" || name[0] == ':' {
		return
	}
	name = textproto.CanonicalMIMEHeaderKey(name)
	h[name] = append(h[name], value)
}

// socketAddress returns the IP address and port of a socket address; the
// zero values for any other kind of address (a pipe, an internal
// listener).
func socketAddress(addr *corev3.Address) (netip.Addr, int) {
	sa := addr.GetSocketAddress()
	if sa == nil {
		return netip.Addr{}, 0
	}
	ip, err := netip.ParseAddr(sa.GetAddress())
	if err != nil {
		return netip.Addr{}, 0
	}
	return ip.Unmap(), int(sa.GetPortValue())
}

// principal returns source.principal and source.namespace for the peer
// principal Envoy reports: Istio's principal is the SPIFFE ID without
// "spiffe://" ("cluster.local/ns/foo/sa/bar"), its namespace the segment
// after "/ns/". A principal that is not a SPIFFE ID is kept as it is,
// without a namespace.
func principal(p string) (principal, namespace string) {
	rest, ok := strings.CutPrefix(p, spiffePrefix)
	if !ok {
		return p, ""
	}
	if _, after, found := strings.Cut(rest, "/ns/"); found {
		namespace, _, _ = strings.Cut(after, "/")
	}
	return rest, namespace
}
