// Package forwardauth answers the authorization subrequests of reverse
// proxies that delegate the decision to idgate: nginx's auth_request
// (/nginx) and Traefik's ForwardAuth or Caddy's forward_auth
// (/forward-auth).
//
// The proxy describes the request it received in headers of its own
// (X-Original-URI, X-Forwarded-Uri, ...); the handler turns them into
// request.Attributes, lets the engine decide, and answers 200 with the
// identity headers the upstream should receive, or the denial: 401 or
// 403, with WWW-Authenticate where it applies. docs/forward-auth.md gives
// the proxy configurations and says exactly which header is read for what.
package forwardauth

import (
	"errors"
	"log/slog"
	"net/http"

	"github.com/idgate/idgate/engine"
	"github.com/idgate/idgate/httpfront"
	"github.com/idgate/idgate/request"
)

// Paths of the endpoints on --authz-listen.
const (
	// NginxPath answers nginx auth_request subrequests.
	NginxPath = "/nginx"
	// ForwardAuthPath answers Traefik ForwardAuth and Caddy forward_auth
	// requests.
	ForwardAuthPath = "/forward-auth"
)

// Options configure Handler.
type Options struct {
	// TrustedProxies is --trusted-proxies: how many proxies, counting the
	// one that asks, are believed about the client's address
	// (request.ProxiedAddrs). With 0, source.ip and remote.ip are the
	// asking proxy itself; set 1 for a proxy that faces the clients.
	TrustedProxies int
	// Next serves requests for every other path (Envoy's HTTP ext_authz
	// on the same listener); nil answers them 404.
	Next http.Handler
	// Logger receives a line for every check request that cannot be
	// decided; nil means slog.Default().
	Logger *slog.Logger
}

// Handler returns the handler of the /nginx and /forward-auth endpoints.
// It routes on the exact path, never redirecting, so that it can sit in
// front of the Envoy handler, whose paths must arrive as sent.
func Handler(eng *engine.Engine, opts Options) http.Handler {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &handler{eng: eng, opts: opts}
}

type handler struct {
	eng  *engine.Engine
	opts Options
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var d *dialect
	switch r.URL.Path {
	case NginxPath:
		d = &nginx
	case ForwardAuthPath:
		d = &forwardAuth
	default:
		if h.opts.Next != nil {
			h.opts.Next.ServeHTTP(w, r)
			return
		}
		httpfront.Error(w, http.StatusNotFound, httpfront.NotFound, httpfront.RequestID(r))
		return
	}
	id := httpfront.RequestID(r)
	a, err := d.attributes(r, h.opts.TrustedProxies)
	if err != nil {
		reason := httpfront.BadRequestReason(err)
		if errors.Is(err, errCheckRequest) {
			reason = httpfront.InvalidCheckRequest
			h.opts.Logger.Warn("check request refused: the proxy does not describe the request as idgate expects", "endpoint", r.URL.Path, "request_id", id, "err", err)
		}
		httpfront.Error(w, d.rejectStatus(err), reason, id)
		return
	}
	a.RequestID = id
	dec := h.eng.Decide(r.Context(), a)
	if dec.Blocks() {
		httpfront.Deny(w, a, dec)
		return
	}
	allow(w, a, dec)
}

// allow answers an allowed check request: 200, with the headers the
// upstream should receive (the proxy copies them onto the request) and
// the request id.
func allow(w http.ResponseWriter, a *request.Attributes, d engine.Decision) {
	h := w.Header()
	for _, s := range d.Authn.Changes.SetHeaders {
		h.Set(s.Name, s.Value)
	}
	h.Set(request.RequestIDHeader, a.RequestID)
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusOK)
}
