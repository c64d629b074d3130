package extauthz

import (
	"net/http"
	"net/netip"
	"strings"

	"github.com/idgate/idgate/engine"
	"github.com/idgate/idgate/httpfront"
	"github.com/idgate/idgate/request"
)

// HTTPPathPrefix is the path_prefix Envoy's HTTP ext_authz service is
// configured with: the check for "GET /a?b" arrives as "GET /envoy/a?b".
const HTTPPathPrefix = "/envoy"

// headersToRemoveHeader lists, in an allowed answer of the HTTP service,
// the headers Envoy removes from the upstream request.
const headersToRemoveHeader = "X-Envoy-Auth-Headers-To-Remove"

// HTTPHandler returns the handler of Envoy's HTTP ext_authz service,
// for every path under HTTPPathPrefix; other paths get 404. The check
// request mirrors the original: its method, its target after the
// prefix, its headers (those Envoy's allowed_headers lets through). The
// answer is 200 with the identity headers (Envoy's
// allowed_upstream_headers picks them) and X-Envoy-Auth-Headers-To-Remove,
// or the denial with its status, body and WWW-Authenticate
// (allowed_client_headers).
//
// Envoy is idgate's TCP peer, so source.ip and remote.ip come from the
// headers Envoy sends, per Options.TrustedProxies: source.ip is the last
// X-Forwarded-For entry (Envoy appends the address it received the
// request from when use_remote_address is set, as at Istio gateways),
// remote.ip Envoy's x-envoy-external-address, else X-Forwarded-For
// through the trusted hops (request.ProxiedAddrs). destination.ip,
// destination.port and connection.sni are unknown.
//
// The handler reads the raw request target: mount it so that nothing
// cleans or redirects paths before it (http.ServeMux does).
func HTTPHandler(eng *engine.Engine, opts Options) http.Handler {
	return &httpHandler{eng: eng, opts: opts.withDefaults()}
}

type httpHandler struct {
	eng  *engine.Engine
	opts Options
}

func (h *httpHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := httpfront.RequestID(r)
	target, ok := strings.CutPrefix(r.RequestURI, HTTPPathPrefix)
	if !ok || !strings.HasPrefix(target, "/") {
		httpfront.Error(w, http.StatusNotFound, httpfront.NotFound, id)
		return
	}
	a, err := h.attributes(r, target)
	if err != nil {
		httpfront.BadRequest(w, err, id)
		return
	}
	a.RequestID = id
	d := h.eng.Decide(r.Context(), a)
	if d.Blocks() {
		httpfront.Deny(w, a, d)
		return
	}
	c := d.Authn.Changes
	hd := w.Header()
	for _, s := range c.SetHeaders {
		hd.Set(s.Name, s.Value)
	}
	if rm := headersToRemove(c); len(rm) > 0 {
		hd.Set(headersToRemoveHeader, strings.Join(rm, ", "))
	}
	hd.Set(request.RequestIDHeader, id)
	hd.Set("Cache-Control", "no-store")
	hd.Set("Content-Length", "0")
	w.WriteHeader(http.StatusOK)
}

// attributes returns the attributes of the original request of the check
// request r, whose target after the prefix is target.
func (h *httpHandler) attributes(r *http.Request, target string) (*request.Attributes, error) {
	orig := new(http.Request)
	*orig = *r
	orig.RequestURI = target
	orig.TLS = nil // the check's own connection says nothing of the original
	a, err := request.FromHTTP(orig, 0)
	if err != nil {
		return nil, err
	}
	a.Frontend = "extauthz-http"
	a.DestinationIP, a.DestinationPort = netip.Addr{}, 0
	trusted := h.opts.TrustedProxies
	peer, _ := request.AddrPort(r.RemoteAddr)
	a.SourceIP, a.RemoteIP = request.ProxiedAddrs(peer, netip.Addr{}, r.Header.Values("X-Forwarded-For"), trusted)
	a.RemoteIP = externalAddress(a.RemoteIP, r.Header.Get(externalAddressHeader), trusted)
	if trusted > 0 && strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https") {
		a.Scheme = "https"
	}
	return a, nil
}
