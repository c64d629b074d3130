package proxy_test

import (
	"context"
	"crypto/tls"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/idgate/idgate/audit"
	"github.com/idgate/idgate/engine"
	"github.com/idgate/idgate/enginetest"
	"github.com/idgate/idgate/proxy"
)

// An allowed request reaches the upstream with the identity headers
// authentication set, whatever the client sent in them, without its token,
// with the standard forwarding headers and the client's request id.
func TestAllowedRequestReachesUpstream(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.client(nil)
	r := e.get(c, "/api/orders?page=2", e.token(nil), http.Header{
		"X-User":          {"root"},
		"X-Tenant":        {"evil", "evil2"},
		"X-Request-Id":    {"client-id-1"},
		"X-Forwarded-For": {"203.0.113.9"},
	})
	got := e.echoed(r)
	checks := []struct{ name, got, want string }{
		{"URI", got.URI, "/api/orders?page=2"},
		{"Host", got.Host, e.addr},
		{"X-User", strings.Join(got.Header.Values("X-User"), ","), "alice"},
		{"X-Tenant", strings.Join(got.Header.Values("X-Tenant"), ","), "tenant-1"},
		{"Authorization", got.Header.Get("Authorization"), ""},
		{"upstream X-Request-Id", got.Header.Get("X-Request-Id"), "client-id-1"},
		{"X-Forwarded-For", got.Header.Get("X-Forwarded-For"), "203.0.113.9, 127.0.0.1"},
		{"X-Forwarded-Proto", got.Header.Get("X-Forwarded-Proto"), "http"},
		{"X-Forwarded-Host", got.Header.Get("X-Forwarded-Host"), e.addr},
		{"response X-Request-Id", strings.Join(r.header.Values("X-Request-Id"), ","), "client-id-1"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
}

// An anonymous request that policy allows reaches the upstream too, with
// forged identity headers stripped and a request id made up for it.
func TestForgedIdentityHeadersStrippedForAnonymous(t *testing.T) {
	e := newEnv(t, envOptions{})
	r := e.get(e.client(nil), "/api/../public/page", "", http.Header{"X-User": {"root"}, "X-Tenant": {"t"}, "X-Request-Id": {"bad id"}})
	got := e.echoed(r)
	if got.URI != "/public/page" {
		t.Errorf("URI = %q, want /public/page", got.URI)
	}
	for _, h := range []string{"X-User", "X-Tenant"} {
		if v := got.Header.Values(h); len(v) > 0 {
			t.Errorf("upstream got %s: %q, want none", h, v)
		}
	}
	id := r.header.Get("X-Request-Id")
	if len(id) != 32 || got.Header.Get("X-Request-Id") != id {
		t.Errorf("response id %q, upstream got %q; want the same new 32-digit id", id, got.Header.Get("X-Request-Id"))
	}
}

// Requests the policies refuse are answered by idgate and never reach the
// upstream.
func TestDeniedRequestsNeverReachUpstream(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.client(nil)
	good := e.token(nil)
	tests := []struct {
		name     string
		path     string
		tok      string
		status   int
		reason   string
		wwwAuthn bool
	}{
		{"no token", "/api/orders", "", 403, "no_allow_match", false},
		{"expired", "/api/orders", e.token(map[string]any{"exp": 1000}), 401, "expired", true},
		{"garbage", "/api/orders", "not-a-token", 401, "malformed", true},
		{"bad signature", "/api/orders", good[:len(good)-4] + "AAAA", 401, "bad_signature", true},
		{"wrong audience", "/api/orders", e.token(map[string]any{"aud": "api://other"}), 403, "wrong_audience", true},
		{"not root", "/admin", e.token(nil), 403, "no_allow_match", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := e.hits.Load()
			r := e.get(c, tt.path, tt.tok, nil)
			checkDenied(t, r, tt.status, tt.reason)
			if h := e.hits.Load() - before; h != 0 {
				t.Errorf("upstream got %d requests, want none", h)
			}
			www := r.header.Get("WWW-Authenticate")
			if tt.wwwAuthn != (www != "") {
				t.Errorf("WWW-Authenticate = %q, want one: %v", www, tt.wwwAuthn)
			}
			if www != "" && www != `Bearer realm="http://`+e.addr+tt.path+`", error="invalid_token"` {
				t.Errorf("WWW-Authenticate = %q", www)
			}
		})
	}
}

// The path authorized is the path served: the upstream gets the target
// normalized as Istio's BASE normalization does, and policies match that
// path, so "/a/../admin" is "/admin" for both.
func TestNormalizedPathForwarded(t *testing.T) {
	e := newEnv(t, envOptions{})
	root := e.token(map[string]any{"sub": "root"})
	alice := e.token(nil)
	tests := []struct {
		name   string
		target string
		tok    string
		status int    // when not 200
		uri    string // what the upstream gets
	}{
		{"dot-dot onto a rule", "/a/../admin", root, 0, "/admin"},
		{"dot-dot denied like the plain path", "/a/../admin", alice, 403, ""},
		{"encoded dot-dot denied", "/api/%2e%2E/admin", alice, 403, ""},
		{"backslash", "/public\\x/..\\y", "", 0, "/public/y"},
		{"dot segments", "/api/./x/../y?q=1", alice, 0, "/api/y?q=1"},
		{"unreserved escapes decoded", "/api/%41%7e%2d", alice, 0, "/api/A~-"},
		{"encoded slash kept", "/api/a%2Fb%2f", alice, 0, "/api/a%2Fb%2f"},
		{"no slash merging", "/api//x", alice, 0, "/api//x"},
		{"climbing above the root", "/../../api/x", alice, 0, "/api/x"},
		{"query passes as sent", "/api/x?a=%41&b", alice, 0, "/api/x?a=%41&b"},
		{"NUL", "/api/a%00b", alice, 400, ""},
		{"NUL in a public path", "/public/%00", "", 400, ""},
		{"asterisk", "*", "", 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := e.hits.Load()
			req := "GET " + tt.target + " HTTP/1.1\r\nHost: shop.example"
			if tt.tok != "" {
				req += "\r\nAuthorization: Bearer " + tt.tok
			}
			r := e.raw(req)
			if tt.status != 0 {
				reason := "no_allow_match"
				if tt.status != 403 {
					reason = "invalid_path"
				}
				checkDenied(t, r, tt.status, reason)
				if h := e.hits.Load() - before; h != 0 {
					t.Errorf("upstream got %d requests, want none", h)
				}
				return
			}
			if got := e.echoed(r).URI; got != tt.uri {
				t.Errorf("upstream got %q, want %q", got, tt.uri)
			}
		})
	}
}

// An absolute-form target is decided and forwarded as its path, with its
// authority as the host (RFC 9112 §3.2.2).
func TestAbsoluteFormTarget(t *testing.T) {
	e := newEnv(t, envOptions{})
	got := e.echoed(e.raw("GET http://other.example/public/a/../b?q HTTP/1.1\r\nHost: shop.example"))
	if got.URI != "/public/b?q" || got.Host != "other.example" || got.Header.Get("X-Forwarded-Host") != "other.example" {
		t.Errorf("upstream got %q for host %q (X-Forwarded-Host %q), want /public/b?q for other.example",
			got.URI, got.Host, got.Header.Get("X-Forwarded-Host"))
	}
}

// A token read from the query string is taken out of the query the
// upstream gets; the rest of the query stays as sent.
func TestQueryTokenRemoved(t *testing.T) {
	e := newEnv(t, envOptions{})
	r := e.get(e.client(nil), "/api/x?a=1&access_token="+e.token(nil)+"&b=%2F", "", nil)
	got := e.echoed(r)
	if got.URI != "/api/x?a=1&b=%2F" {
		t.Errorf("upstream got %q, want %q", got.URI, "/api/x?a=1&b=%2F")
	}
	if got.Header.Get("X-User") != "alice" {
		t.Errorf("X-User = %q, want alice", got.Header.Get("X-User"))
	}
}

// source.ip (ipBlocks) is the TCP peer; remote.ip (remoteIpBlocks)
// follows X-Forwarded-For only through the trusted number of proxies, so
// a forged X-Forwarded-For gets no one in.
func TestSourceAndRemoteIP(t *testing.T) {
	envs := map[int]*env{0: newEnv(t, envOptions{}), 1: newEnv(t, envOptions{proxy: proxy.Options{TrustedProxies: 1}})}
	tests := []struct {
		name    string
		from    string
		xff     string
		trusted int
		path    string
		status  int
	}{
		{"local client", "127.0.0.1", "", 0, "/local-only", 200},
		{"forged XFF, no trusted proxy", "127.0.0.2", "127.0.0.1", 0, "/local-only", 403},
		{"forged XFF behind the client's own entry", "127.0.0.2", "127.0.0.1, 127.0.0.1", 0, "/local-only", 403},
		{"XFF from a trusted proxy", "127.0.0.2", "127.0.0.1", 1, "/local-only", 200},
		{"trusted proxy, client not local", "127.0.0.1", "192.0.2.1", 1, "/local-only", 403},
		{"peer in ipBlocks", "127.0.0.2", "", 0, "/ip-only", 200},
		{"peer not in ipBlocks", "127.0.0.1", "", 0, "/ip-only", 403},
		{"ipBlocks never read XFF", "127.0.0.1", "127.0.0.2", 1, "/ip-only", 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := envs[tt.trusted]
			d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(tt.from)}}
			c := e.client(&http.Transport{DialContext: d.DialContext})
			var h http.Header
			if tt.xff != "" {
				h = http.Header{"X-Forwarded-For": {tt.xff}}
			}
			r := e.get(c, tt.path, "", h)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d; body %q", r.status, tt.status, r.body)
			}
		})
	}
}

// The upstream's host is sent when asked (the client's by default, see
// TestAllowedRequestReachesUpstream), and a path in the upstream URL comes
// before the forwarded path.
func TestRewriteHostAndUpstreamPath(t *testing.T) {
	e := newEnv(t, envOptions{proxy: proxy.Options{RewriteHost: true}, upstreamPath: "/base/"})
	got := e.echoed(e.get(e.client(nil), "/public/a/../b?x", "", nil))
	if want := strings.TrimPrefix(e.upstream.URL, "http://"); got.Host != want {
		t.Errorf("Host = %q, want the upstream's %q", got.Host, want)
	}
	if got.URI != "/base/public/b?x" {
		t.Errorf("upstream got %q, want /base/public/b?x", got.URI)
	}
}

func TestNewRejectsBadUpstreams(t *testing.T) {
	eng := enginetest.New(t, policies, engine.Options{}).Engine
	tests := []struct {
		upstream string
		opts     proxy.Options
		want     string
	}{
		{"ftp://x", proxy.Options{}, "scheme"},
		{"http://", proxy.Options{}, "no host"},
		{"http://u:p@x", proxy.Options{}, "credentials"},
		{"http://x/?a=1", proxy.Options{}, "query"},
		{"https://x", proxy.Options{UpstreamH2C: true}, "cleartext"},
		{"https://x", proxy.Options{UpstreamCAFile: "/nonexistent/ca.pem"}, "upstream CA"},
		{"https://x", proxy.Options{UpstreamCertFile: "c.pem"}, "both"},
	}
	for _, tt := range tests {
		u, err := url.Parse(tt.upstream)
		if err != nil {
			t.Fatal(err)
		}
		_, err = proxy.New(eng, u, tt.opts)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New(%q) error = %v, want one about %q", tt.upstream, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), ":p@") {
			t.Errorf("error %q shows the password", err)
		}
	}
}

// A header section over the limit is refused before any decision.
func TestMaxHeaderBytes(t *testing.T) {
	e := newEnv(t, envOptions{server: proxy.ServerOptions{MaxHeaderBytes: 8 << 10}})
	r := e.get(e.client(nil), "/public/x", "", http.Header{"X-Big": {strings.Repeat("a", 32<<10)}})
	if r.status != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("status %d, want 431", r.status)
	}
	if e.hits.Load() != 0 {
		t.Error("the upstream got the request")
	}
}

// HTTP/2 reaches the proxy over TLS (ALPN) and in cleartext (prior
// knowledge), and is decided like HTTP/1.1.
func TestHTTP2(t *testing.T) {
	ca := newPKI(t)
	certPEM, keyPEM, _ := ca.issue(t, "proxy", false)
	tlsOpts := proxy.ServerOptions{CertFile: ca.write(t, "cert.pem", certPEM), KeyFile: ca.write(t, "key.pem", keyPEM)}

	h2c := &http.Transport{Protocols: new(http.Protocols)}
	h2c.Protocols.SetUnencryptedHTTP2(true)
	tests := []struct {
		name   string
		server proxy.ServerOptions
		tr     *http.Transport
		proto  string
	}{
		{"TLS", tlsOpts, &http.Transport{TLSClientConfig: ca.tlsConfig(), ForceAttemptHTTP2: true}, "https"},
		{"h2c", proxy.ServerOptions{}, h2c, "http"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, envOptions{server: tt.server})
			c := e.client(tt.tr)
			r := e.get(c, "/api/a/../b", e.token(nil), http.Header{"X-User": {"root"}})
			if r.proto != 2 {
				t.Errorf("client spoke HTTP/%d, want 2", r.proto)
			}
			got := e.echoed(r)
			if got.URI != "/api/b" || got.Header.Get("X-User") != "alice" || got.Header.Get("X-Forwarded-Proto") != tt.proto {
				t.Errorf("upstream got %s X-User %q X-Forwarded-Proto %q, want /api/b alice %s",
					got.URI, got.Header.Get("X-User"), got.Header.Get("X-Forwarded-Proto"), tt.proto)
			}
			before := e.hits.Load()
			checkDenied(t, e.get(c, "/api/b", "", nil), 403, "no_allow_match")
			if e.hits.Load() != before {
				t.Error("a denied HTTP/2 request reached the upstream")
			}
		})
	}
}

// What an HTTP/2 client can put in a target that an HTTP/1.1 request line
// cannot hold reaches an HTTP/1.1 upstream escaped: the upstream gets one
// well-formed request line, never a split one.
func TestHTTP2TargetEscapedForHTTP1Upstream(t *testing.T) {
	e := newEnv(t, envOptions{})
	tr := h2cTransport()
	defer tr.CloseIdleConnections()
	host := e.addr
	req := &http.Request{Method: "GET", Host: host, Header: http.Header{},
		URL: &url.URL{Scheme: "http", Host: host, Opaque: "/public/a b?x y&z=\"c\"|\xff HTTP/1.1"}}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	got := e.echoed(result{status: resp.StatusCode, body: string(body)})
	if want := "/public/a%20b?x%20y&z=%22c%22%7C%FF%20HTTP/1.1"; got.URI != want {
		t.Errorf("upstream got %q, want %q", got.URI, want)
	}
}

// An https upstream is checked against the configured CA, gets the
// proxy's client certificate, and is spoken to in HTTP/2 when it offers
// it; a cleartext upstream can be spoken to in h2c.
func TestUpstreamProtocols(t *testing.T) {
	ca := newPKI(t)
	serverCert, serverKey, _ := ca.issue(t, "upstream", false)
	clientCert, clientKey, _ := ca.issue(t, "idgate", true)
	caFile := ca.write(t, "ca.pem", ca.pem)
	certFile, keyFile := ca.write(t, "client.pem", clientCert), ca.write(t, "client-key.pem", clientKey)
	startMTLS := func(s *httptest.Server) {
		cert, err := tls.X509KeyPair(serverCert, serverKey)
		if err != nil {
			t.Fatal(err)
		}
		s.EnableHTTP2 = true
		s.Config.ErrorLog = log.New(io.Discard, "", 0) // handshakes fail on purpose
		s.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: ca.pool(), ClientAuth: tls.RequireAndVerifyClientCert}
		s.StartTLS()
	}
	startH2C := func(s *httptest.Server) {
		s.Config.Protocols = new(http.Protocols)
		s.Config.Protocols.SetHTTP1(true)
		s.Config.Protocols.SetUnencryptedHTTP2(true)
		s.Start()
	}

	t.Run("https with client certificate", func(t *testing.T) {
		e := newEnv(t, envOptions{startUpstream: startMTLS, proxy: proxy.Options{UpstreamCAFile: caFile, UpstreamCertFile: certFile, UpstreamKeyFile: keyFile}})
		got := e.echoed(e.get(e.client(nil), "/api/x", e.token(nil), nil))
		if got.Proto != 2 || got.ClientCert != "idgate" {
			t.Errorf("upstream got HTTP/%d from client %q, want HTTP/2 from idgate", got.Proto, got.ClientCert)
		}
	})
	t.Run("https without the client certificate", func(t *testing.T) {
		e := newEnv(t, envOptions{startUpstream: startMTLS, proxy: proxy.Options{UpstreamCAFile: caFile}})
		checkDenied(t, e.get(e.client(nil), "/api/x", e.token(nil), nil), 502, "upstream_unavailable")
	})
	t.Run("https with an unknown CA", func(t *testing.T) {
		e := newEnv(t, envOptions{startUpstream: startMTLS, proxy: proxy.Options{UpstreamCertFile: certFile, UpstreamKeyFile: keyFile}})
		checkDenied(t, e.get(e.client(nil), "/api/x", e.token(nil), nil), 502, "upstream_unavailable")
		if e.hits.Load() != 0 {
			t.Error("the request reached an upstream whose certificate is not trusted")
		}
	})
	t.Run("h2c", func(t *testing.T) {
		e := newEnv(t, envOptions{startUpstream: startH2C, proxy: proxy.Options{UpstreamH2C: true}})
		if got := e.echoed(e.get(e.client(nil), "/api/x", e.token(nil), nil)); got.Proto != 2 {
			t.Errorf("upstream got HTTP/%d, want 2", got.Proto)
		}
	})
}

// recorder is an audit sink that keeps the records.
type recorder struct {
	mu      sync.Mutex
	records []audit.Record
}

func (r *recorder) Record(_ context.Context, rec audit.Record) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.records = append(r.records, rec)
}

// Every decision's audit record carries the id its response carries.
func TestAuditRecordHasResponseID(t *testing.T) {
	rec := &recorder{}
	e := newEnv(t, envOptions{engine: engine.Options{Audit: rec}})
	c := e.client(nil)
	responses := []result{
		e.get(c, "/api/x", e.token(nil), nil),
		e.get(c, "/api/x", "", http.Header{"X-Request-Id": {"mine"}}),
		e.get(c, "/api/x", "bad", nil),
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.records) != len(responses) {
		t.Fatalf("%d audit records for %d requests", len(rec.records), len(responses))
	}
	for i, r := range responses {
		got := rec.records[i]
		if id := r.header.Get("X-Request-Id"); id == "" || got.RequestID != id || got.Frontend != proxy.Frontend || got.Status != r.status {
			t.Errorf("request %d: response %d %q, audit record %d %q from %q", i, r.status, id, got.Status, got.RequestID, got.Frontend)
		}
	}
}

// In dry-run mode denied requests go through, still without forged
// identity headers.
func TestDryRun(t *testing.T) {
	e := newEnv(t, envOptions{engine: engine.Options{DryRun: true}})
	c := e.client(nil)
	got := e.echoed(e.get(c, "/api/x", "", http.Header{"X-User": {"root"}}))
	if v := got.Header.Values("X-User"); len(v) > 0 {
		t.Errorf("upstream got X-User %q, want none", v)
	}
	got = e.echoed(e.get(c, "/admin", e.token(nil), http.Header{"X-User": {"root"}}))
	if v := got.Header.Values("X-User"); len(v) != 1 || v[0] != "alice" {
		t.Errorf("upstream got X-User %q, want alice", v)
	}
	if e.hits.Load() != 2 {
		t.Errorf("upstream got %d requests, want 2", e.hits.Load())
	}
}
