// Package proxy is idgate's reverse proxy front end: it decides every
// request it receives with the engine and passes the allowed ones to one
// upstream, with the identity headers authentication produced and without
// any copy of them a client sent. HTTP/1.1, HTTP/2 (over TLS and
// cleartext), WebSocket upgrades and streamed responses pass through.
//
// The path forwarded is exactly the path authorized: the request target
// normalized as Istio's BASE normalization does. Requests whose target
// cannot be normalized are answered 400 and never forwarded.
package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"time"

	"github.com/idgate/idgate/engine"
	"github.com/idgate/idgate/httpfront"
	"github.com/idgate/idgate/request"
)

// Frontend is the name the proxy gives itself in request.Attributes.
const Frontend = "proxy"

// Defaults of the Options fields left zero.
const (
	DefaultUpstreamTimeout     = 60 * time.Second
	DefaultDialTimeout         = 10 * time.Second
	DefaultMaxIdleConnsPerHost = 256
)

// Options configure a Proxy. The zero value is a proxy that trusts no
// X-Forwarded-For hop and reaches its upstream with the defaults above.
// Dry-run mode and audit records are the engine's (engine.Options).
type Options struct {
	// TrustedProxies is how many X-Forwarded-For hops to trust when
	// deriving remote.ip (Istio's numTrustedProxies); 0 ignores the header.
	TrustedProxies int
	// RewriteHost sends the upstream's host in the Host header instead of
	// the one the client sent (which is kept by default, as Envoy does).
	RewriteHost bool

	// UpstreamTimeout bounds the wait for the upstream's response headers
	// (504 when it passes); zero means DefaultUpstreamTimeout. Response
	// bodies and upgraded connections are not bounded: they may stream.
	UpstreamTimeout time.Duration
	// DialTimeout bounds connecting to the upstream; zero means
	// DefaultDialTimeout.
	DialTimeout time.Duration
	// MaxIdleConnsPerHost is how many idle keep-alive connections to the
	// upstream are kept; zero means DefaultMaxIdleConnsPerHost.
	MaxIdleConnsPerHost int
	// UpstreamCAFile is a PEM file of the certificate authorities an
	// https upstream's certificate must chain to; empty means the system
	// roots.
	UpstreamCAFile string
	// UpstreamCertFile and UpstreamKeyFile are the PEM client certificate
	// and key presented to an https upstream that asks for one; both or
	// neither.
	UpstreamCertFile, UpstreamKeyFile string
	// UpstreamServerName is the name an https upstream's certificate is
	// checked against (and sent in SNI); empty means the URL's host.
	UpstreamServerName string
	// UpstreamH2C speaks cleartext HTTP/2 (prior knowledge) to an http
	// upstream, as gRPC servers need. WebSocket upgrades cannot pass over
	// it.
	UpstreamH2C bool

	// Logger receives upstream failures; nil discards them.
	Logger *slog.Logger
}

// A Proxy is an http.Handler that decides each request and forwards the
// allowed ones to its upstream. It is safe for concurrent use.
type Proxy struct {
	eng       *engine.Engine
	upstream  *url.URL
	base      string // the upstream's escaped path, without a trailing "/"
	opts      Options
	log       *slog.Logger
	transport *http.Transport
	rp        *httputil.ReverseProxy
}

// New returns a Proxy that decides requests with eng and forwards the
// allowed ones to upstream, an http or https URL whose path, if any, is
// prefixed to every forwarded path.
func New(eng *engine.Engine, upstream *url.URL, opts Options) (*Proxy, error) {
	if eng == nil {
		return nil, errors.New("proxy: no engine")
	}
	if err := checkUpstream(upstream, opts); err != nil {
		return nil, err
	}
	t, err := newTransport(upstream, opts)
	if err != nil {
		return nil, err
	}
	u := *upstream
	p := &Proxy{
		eng:       eng,
		upstream:  &u,
		base:      strings.TrimSuffix(upstream.EscapedPath(), "/"),
		opts:      opts,
		log:       opts.Logger,
		transport: t,
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite:   p.rewrite,
		Transport: t,
		// Zero: ReverseProxy already flushes every write of a response
		// that streams (no Content-Length, or text/event-stream); a
		// response of known length goes out through the connection's
		// buffer, without a write system call per piece.
		FlushInterval:  0,
		BufferPool:     newBufferPool(),
		ModifyResponse: p.modifyResponse,
		ErrorHandler:   p.upstreamError,
		ErrorLog:       slog.NewLogLogger(p.log.Handler(), slog.LevelWarn),
	}
	return p, nil
}

func checkUpstream(u *url.URL, opts Options) error {
	switch {
	case u == nil:
		return errors.New("proxy: no upstream URL")
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("proxy: upstream %q: scheme must be http or https", u.Redacted())
	case u.Host == "":
		return fmt.Errorf("proxy: upstream %q: no host", u.Redacted())
	case u.User != nil:
		return fmt.Errorf("proxy: upstream %q: credentials in the URL are not supported", u.Redacted())
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return fmt.Errorf("proxy: upstream %q: a query or fragment is not allowed", u.Redacted())
	case opts.UpstreamH2C && u.Scheme != "http":
		return fmt.Errorf("proxy: upstream %q: cleartext HTTP/2 needs an http upstream", u.Redacted())
	}
	return nil
}

// CloseIdleConnections closes the proxy's idle connections to its
// upstream.
func (p *Proxy) CloseIdleConnections() { p.transport.CloseIdleConnections() }

// forward is what the proxy knows of a request it forwards: its
// attributes and its decision. It is also the context of the request it
// forwards, the parent's with itself as the value of forwardKey{}, so
// that one allocation holds everything the proxy adds to a request.
type forward struct {
	context.Context
	attrs    request.Attributes
	decision engine.Decision
}

type forwardKey struct{}

// Value returns f for forwardKey{}, else the parent context's value.
func (f *forward) Value(key any) any {
	if _, ok := key.(forwardKey); ok {
		return f
	}
	return f.Context.Value(key)
}

// forwardOf returns the forward of a request ServeHTTP passed on, nil for
// any other.
func forwardOf(r *http.Request) *forward {
	f, _ := r.Context().Value(forwardKey{}).(*forward)
	return f
}

// ServeHTTP decides r and either answers it (denied: 401/403; a target
// that cannot be normalized: 400 or 404) or forwards it. A request the
// decision blocks never reaches the upstream, an upgrade included. Every
// response carries the request's X-Request-Id.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := httpfront.RequestID(r)
	ctx := r.Context()
	f := &forward{Context: ctx}
	a := &f.attrs
	if err := a.FromHTTP(r, p.opts.TrustedProxies); err != nil {
		closeIfBodyUnread(w, r)
		httpfront.BadRequest(w, err, id)
		return
	}
	a.RequestID, a.Frontend = id, Frontend
	f.decision = p.eng.Decide(ctx, a)
	if f.decision.Blocks() {
		closeIfBodyUnread(w, r)
		httpfront.Deny(w, a, f.decision)
		return
	}
	stripH2CUpgrade(r.Header)
	p.rp.ServeHTTP(w, r.WithContext(f))
}

// rewrite builds the upstream request: the normalized path under the
// upstream's, the query as decided (a query token removed), the
// authentication changes applied to the headers, X-Forwarded-* set.
func (p *Proxy) rewrite(pr *httputil.ProxyRequest) {
	f := forwardOf(pr.In)
	a, c := &f.attrs, f.decision.Authn.Changes
	out := pr.Out

	// out.URL is the outgoing request's own copy (ReverseProxy clones
	// the incoming request).
	u := out.URL
	u.Scheme, u.Host = p.upstream.Scheme, p.upstream.Host
	u.User, u.Fragment, u.RawFragment = nil, "", ""
	setPath(u, p.base+a.Path)
	q := a.Query
	if c.RewriteQuery {
		q = c.Query
	}
	u.RawQuery, u.ForceQuery = escapeQuery(q), false
	// The Host authorized, which is the request's own unless the target
	// was in absolute form.
	out.Host = a.Host
	if p.opts.RewriteHost {
		out.Host = ""
	}

	// Changes remove what the client sent in the headers idgate sets
	// (and the token header unless it is forwarded), then set them.
	c.Apply(out.Header)
	out.Header[forwardedFor] = pr.In.Header[forwardedFor]
	pr.SetXForwarded()
}

const forwardedFor = "X-Forwarded-For"

// setPath makes u's request target exactly the escaped path p (which has
// been normalized, so it holds no "?", "#" or dot segments).
func setPath(u *url.URL, p string) {
	u.Opaque = ""
	if raw, err := url.PathUnescape(p); err == nil {
		u.Path, u.RawPath = raw, p
		if u.EscapedPath() == p {
			return
		}
	}
	// p holds a "%" that starts no escape, which url.URL cannot
	// represent as a path: send it as an opaque target. A target that
	// starts with "//" goes in absolute form, which HTTP/1.1 servers must
	// accept, so that it is not read as an authority.
	u.Path, u.RawPath = "", ""
	if strings.HasPrefix(p, "//") {
		u.Opaque = "//" + u.Host + p
		return
	}
	u.Opaque = p
}

// escapeQuery percent-encodes the bytes a query may not hold raw (RFC 3986
// §3.4) — space, control characters, DEL, non-ASCII bytes and " # < > \ ^
// ` { | } — as the path normalization does for the path. HTTP/2 clients
// can send them, and written raw into an HTTP/1.1 request line they would
// split it. Escaping changes no parameter's decoded value.
func escapeQuery(q string) string {
	n := 0
	for i := 0; i < len(q); i++ {
		if mustEscape(q[i]) {
			n++
		}
	}
	if n == 0 {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + 2*n)
	for i := 0; i < len(q); i++ {
		if c := q[i]; mustEscape(c) {
			b.WriteByte('%')
			b.WriteByte(upperHex[c>>4])
			b.WriteByte(upperHex[c&0xf])
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

const upperHex = "0123456789ABCDEF"

func mustEscape(c byte) bool {
	switch c {
	case '"', '#', '<', '>', '\\', '^', '`', '{', '|', '}':
		return true
	}
	return c <= ' ' || c >= 0x7f
}

// modifyResponse gives the upstream's response the request's id; the
// client sees idgate's id, whatever the upstream sent.
func (p *Proxy) modifyResponse(res *http.Response) error {
	if f := forwardOf(res.Request); f != nil {
		res.Header.Set(request.RequestIDHeader, f.attrs.RequestID)
	}
	return nil
}

// upstreamError answers a request the upstream did not answer: 504 when
// it timed out, 502 otherwise; nothing when the client went away.
func (p *Proxy) upstreamError(w http.ResponseWriter, r *http.Request, err error) {
	id := r.Header.Get(request.RequestIDHeader)
	if f := forwardOf(r); f != nil {
		id = f.attrs.RequestID
	}
	if r.Context().Err() != nil {
		p.log.Debug("client went away before the upstream answered", "request_id", id, "error", err)
		return
	}
	status, reason := http.StatusBadGateway, httpfront.UpstreamUnavailable
	if isTimeout(err) {
		status, reason = http.StatusGatewayTimeout, httpfront.UpstreamTimeout
	}
	p.log.Warn("upstream request failed", "request_id", id, "upstream", p.upstream.Redacted(), "status", status, "error", err)
	httpfront.Error(w, status, reason, id)
}

func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	ne, ok := errors.AsType[net.Error](err)
	return ok && ne.Timeout()
}
