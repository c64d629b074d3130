// Package httpfront holds what idgate's HTTP front ends share: the request
// id every request carries, and the responses idgate writes itself —
// denials, rejected request targets and upstream failures. The reverse
// proxy, Envoy's HTTP ext_authz endpoint and the forward-auth endpoints all
// answer through it, so a denied request looks the same however it
// arrived.
package httpfront

import (
	"errors"
	"net/http"
	"strings"

	"github.com/idgate/idgate/engine"
	"github.com/idgate/idgate/request"
)

// Reason codes of responses that no decision produced.
const (
	// InvalidPath: the request target cannot be authorized (see
	// request.PathError); the request is never forwarded.
	InvalidPath = "invalid_path"
	// InvalidMethod: the request method cannot be authorized (see
	// request.MethodError); the request is never forwarded.
	InvalidMethod = "invalid_method"
	// UpstreamUnavailable: the upstream could not be reached or broke
	// the exchange (502).
	UpstreamUnavailable = "upstream_unavailable"
	// UpstreamTimeout: the upstream did not answer in time (504).
	UpstreamTimeout = "upstream_timeout"
	// InvalidCheckRequest: a check request (ext_authz, forward-auth) does
	// not describe the original request — the asking proxy is not
	// configured as documented. Nothing is decided.
	InvalidCheckRequest = "invalid_check_request"
	// NotFound: a path no endpoint serves.
	NotFound = "not_found"
)

// RequestID returns the id of r — its X-Request-Id when that is
// well-formed, else a new one (request.RequestID) — and sets it on r's
// headers, so that the decision, the audit record and whatever idgate
// forwards all carry the same id. The responses of this package echo it.
func RequestID(r *http.Request) string {
	v := r.Header[request.RequestIDHeader]
	var incoming string
	if len(v) > 0 {
		incoming = v[0]
	}
	id := request.RequestID(incoming)
	if len(v) == 1 && v[0] == id {
		return id // kept as it is
	}
	if r.Header == nil {
		r.Header = http.Header{}
	}
	r.Header[request.RequestIDHeader] = []string{id}
	return id
}

// Error writes a response idgate produces itself: status, and a short
// plain-text body "<status text>: <reason>" followed by the request id.
// The body never holds token contents or policy internals, only the
// reason code. Headers already set on w stay, except those that describe
// a body.
func Error(w http.ResponseWriter, status int, reason, requestID string) {
	h := w.Header()
	h.Del("Content-Length")
	h.Del("Content-Encoding")
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	h.Set(request.RequestIDHeader, requestID)
	w.WriteHeader(status)
	var b strings.Builder
	b.Grow(len(reason) + len(requestID) + 40)
	b.WriteString(http.StatusText(status))
	b.WriteString(": ")
	b.WriteString(reason)
	b.WriteString("\nrequest id: ")
	b.WriteString(requestID)
	b.WriteByte('\n')
	// A client that went away is no concern of ours.
	_, _ = w.Write([]byte(b.String()))
}

// Deny writes the response for a request d does not allow: d.Status with
// d.Reason (Error), and, when authentication rejected a token, the
// WWW-Authenticate header Envoy's jwt_authn sends (RFC 6750), whose realm
// is the request URL without its query string. a.RequestID must be set.
func Deny(w http.ResponseWriter, a *request.Attributes, d engine.Decision) {
	if d.Authn.Err != nil && d.Reason == string(d.Authn.Err.Code) {
		if v := d.Authn.WWWAuthenticate(Realm(a)); v != "" {
			w.Header().Set("WWW-Authenticate", v)
		}
	}
	status := d.Status
	if status < 400 {
		// A denial is never a success, whatever the decision says.
		status = http.StatusForbidden
	}
	Error(w, status, d.Reason, a.RequestID)
}

// BadRequest writes the response for a request whose attributes could not
// be built: the status of a *request.PathError (400, or 404 for a target
// not in origin form, as Envoy answers), 400 for any other error, with
// BadRequestReason. The request must not be decided or forwarded.
func BadRequest(w http.ResponseWriter, err error, requestID string) {
	status := http.StatusBadRequest
	if pe, ok := errors.AsType[*request.PathError](err); ok {
		status = pe.Status()
	}
	Error(w, status, BadRequestReason(err), requestID)
}

// BadRequestReason is the reason code of a request whose attributes could
// not be built: InvalidMethod for a *request.MethodError, else
// InvalidPath.
func BadRequestReason(err error) string {
	if _, ok := errors.AsType[*request.MethodError](err); ok {
		return InvalidMethod
	}
	return InvalidPath
}

// Realm returns the URL of the request a describes, without its query
// string: "<scheme>://<host><path>", the realm of a WWW-Authenticate
// challenge.
func Realm(a *request.Attributes) string {
	scheme := a.Scheme
	if scheme == "" {
		scheme = "http"
	}
	return scheme + "://" + a.Host + a.Path
}
