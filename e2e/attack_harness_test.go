package e2e

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/go-jose/go-jose/v4"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/idgate/idgate/config"
	"github.com/idgate/idgate/enginetest"
	"github.com/idgate/idgate/mint"
	"github.com/idgate/idgate/server"
)

// gatewayPolicies are the policies the whole-gateway tests decide against,
// with %s the identity provider's URL: a token is required for /api/ and
// /ws/, anonymous GETs are fine on orders.example's /public/, only
// 127.0.0.1 may use /local/ (remoteIpBlocks), and /api/admin…, /ws/admin…
// and every DELETE are denied to everyone.
const gatewayPolicies = `apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: orders}
spec:
  jwtRules:
  - issuer: https://issuer.example
    jwksUri: %s/jwks
    audiences: [api://orders]
    outputPayloadToHeader: x-jwt-payload
    outputClaimToHeaders:
    - {header: x-user-oid, claim: oid}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow, namespace: orders}
spec:
  rules:
  - from:
    - source: {requestPrincipals: ["*"]}
    to:
    - operation: {paths: ["/api/*", "/ws/*"]}
  - to:
    - operation: {hosts: [orders.example], methods: [GET], paths: ["/public/*"]}
  - from:
    - source: {remoteIpBlocks: [127.0.0.1/32]}
    to:
    - operation: {paths: ["/local/*"]}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny, namespace: orders}
spec:
  action: DENY
  rules:
  - to:
    - operation: {paths: ["/api/admin*", "/ws/admin*"]}
  - to:
    - operation: {methods: [DELETE]}
`

// idpMode is how the test identity provider answers JWKS fetches.
type idpMode int32

const (
	idpUp      idpMode = iota // the key set
	idpDown                   // 500
	idpSlow                   // nothing until the fetch gives up
	idpGarbage                // 200 with a body that is not JSON
	idpEmpty                  // 200 with {"keys":[]}
)

// idp is a JWKS endpoint the test controls: which keys it publishes, how
// it answers, and how often it was asked.
type idp struct {
	*httptest.Server
	mode    atomic.Int32
	fetches atomic.Int64

	mu   sync.Mutex
	keys []*mint.Key
	// extra are JWKs published besides keys.
	extra []json.RawMessage
}

func newIDP(t testing.TB, keys ...*mint.Key) *idp {
	t.Helper()
	p := &idp{keys: keys}
	p.Server = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(p.Close)
	return p
}

func (p *idp) serve(w http.ResponseWriter, r *http.Request) {
	p.fetches.Add(1)
	switch idpMode(p.mode.Load()) {
	case idpDown:
		http.Error(w, "internal error", http.StatusInternalServerError)
	case idpSlow:
		<-r.Context().Done()
	case idpGarbage:
		io.WriteString(w, "<html>maintenance</html>")
	case idpEmpty:
		io.WriteString(w, `{"keys":[]}`)
	default:
		w.Header().Set("Content-Type", "application/json")
		w.Write(p.jwks())
	}
}

// jwks is the JWK Set of the published keys.
func (p *idp) jwks() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	set.Keys = append([]json.RawMessage{}, p.extra...)
	for _, k := range p.keys {
		var one struct {
			Keys []json.RawMessage `json:"keys"`
		}
		json.Unmarshal(k.JWKS(), &one)
		set.Keys = append(set.Keys, one.Keys...)
	}
	b, _ := json.Marshal(set)
	return b
}

// publish replaces the published keys.
func (p *idp) publish(keys ...*mint.Key) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.keys = keys
}

func (p *idp) set(m idpMode) { p.mode.Store(int32(m)) }

// seen is what the recording upstream saw of one request.
type seen struct {
	Method, URI, Host, Proto string
	Header                   http.Header
}

// recorder is an upstream that records every request it receives by
// request id. Its behaviour is its handler's, an echo by default.
type recorder struct {
	*httptest.Server
	hits atomic.Int64

	mu   sync.Mutex
	byID map[string][]seen
	// then answers the request after it is recorded; nil answers 200
	// "upstream".
	then http.Handler
}

func newRecorder(t testing.TB, then http.Handler) *recorder {
	t.Helper()
	u := &recorder{byID: map[string][]seen{}, then: then}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.hits.Add(1)
		u.mu.Lock()
		id := r.Header.Get("X-Request-Id")
		u.byID[id] = append(u.byID[id], seen{Method: r.Method, URI: r.RequestURI, Host: r.Host, Proto: r.Proto, Header: r.Header.Clone()})
		u.mu.Unlock()
		if u.then != nil {
			u.then.ServeHTTP(w, r)
			return
		}
		io.WriteString(w, "upstream")
	}))
	t.Cleanup(u.Close)
	return u
}

// got returns what the upstream saw under request id.
func (u *recorder) got(id string) []seen {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.byID[id]
}

// ids returns every request id the upstream saw.
func (u *recorder) ids() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	var ids []string
	for id := range u.byID {
		ids = append(ids, id)
	}
	return ids
}

// gateway is the whole of idgate serve, in process: reverse proxy, ext_authz
// gRPC and HTTP, forward-auth and admin listeners, over policies whose keys
// come from a JWKS endpoint the test controls, in front of a recording
// upstream, with an audit file.
type gateway struct {
	t   testing.TB
	key *mint.Key
	// raw is a second published key, with key id rawKID, that signs
	// payloads written by hand (signedRaw).
	rawKey *ecdsa.PrivateKey
	idp    *idp
	up     *recorder
	dir    string
	audit  string
	addrs  map[string]net.Addr

	cancel context.CancelFunc
	done   chan error
	grpc   authv3.AuthorizationClient
}

// rawKID is the key id of gateway.raw.
const rawKID = "raw-key"

// gatewayOptions change what startGateway starts.
type gatewayOptions struct {
	// upstream answers allowed requests (after they are recorded).
	upstream http.Handler
	// config changes the configuration before it is validated.
	config func(*config.Config)
	// idpMode is how the identity provider answers from the start.
	idpMode idpMode
	// noCheck leaves out the end-of-test check that every request the
	// upstream saw was allowed in the audit trail (for tests that stop
	// the gateway before it could write the record, which they check
	// themselves).
	noCheck bool
}

// startGateway starts a gateway and stops it when the test ends, checking
// then that the upstream saw no request the audit trail does not show as
// allowed.
func startGateway(t testing.TB, o gatewayOptions) *gateway {
	t.Helper()
	key, err := mint.NewKey("ES256")
	if err != nil {
		t.Fatal(err)
	}
	g := &gateway{t: t, key: key, dir: t.TempDir(), done: make(chan error, 1)}
	g.idp = newIDP(t, key)
	g.rawKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jwk, err := json.Marshal(jose.JSONWebKey{Key: g.rawKey.Public(), KeyID: rawKID, Algorithm: "ES256", Use: "sig"})
	if err != nil {
		t.Fatal(err)
	}
	g.idp.extra = []json.RawMessage{jwk}
	g.idp.set(o.idpMode)
	g.up = newRecorder(t, o.upstream)
	g.writePolicies(fmt.Sprintf(gatewayPolicies, g.idp.URL))
	g.audit = filepath.Join(g.dir, "audit.jsonl")

	cfg := config.Defaults()
	cfg.Policies = []string{filepath.Join(g.dir, "policies.yaml")}
	cfg.Listen = "127.0.0.1:0"
	cfg.Upstream = g.up.URL
	cfg.GRPCListen = "127.0.0.1:0"
	cfg.AuthzListen = "127.0.0.1:0"
	cfg.AdminListen = "127.0.0.1:0"
	cfg.Audit = g.audit
	cfg.Timeouts.ReadHeader = config.Duration(time.Second)
	cfg.Timeouts.Upstream = config.Duration(5 * time.Second)
	cfg.Timeouts.Shutdown = config.Duration(5 * time.Second)
	cfg.Limits.MaxHeaderBytes = 32 << 10
	cfg.Keys.FetchTimeout = config.Duration(time.Second)
	cfg.Keys.MinRefreshInterval = config.Duration(time.Hour)
	cfg.Keys.RefreshInterval = config.Duration(time.Hour)
	cfg.Keys.MaxStale = config.Duration(24 * time.Hour)
	if o.config != nil {
		o.config(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan map[string]net.Addr, 1)
	s, err := server.New(cfg, server.Options{Logger: discard, PollInterval: 20 * time.Millisecond, Ready: func(a map[string]net.Addr) { ready <- a }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	g.cancel = cancel
	go func() { g.done <- s.Run(ctx) }()
	select {
	case g.addrs = <-ready:
	case err := <-g.done:
		t.Fatalf("Run ended before it was ready: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the gateway was not ready after 10s")
	}
	conn, err := grpc.NewClient(g.addrs["grpc-listen"].String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	g.grpc = authv3.NewAuthorizationClient(conn)
	t.Cleanup(func() {
		conn.Close()
		g.stop()
		if !o.noCheck && !t.Failed() {
			g.checkUpstreamAllowed()
		}
	})
	return g
}

// stop shuts the gateway down as SIGTERM does and returns Run's error.
func (g *gateway) stop() error {
	if g.cancel == nil {
		return nil
	}
	g.cancel()
	g.cancel = nil
	select {
	case err := <-g.done:
		return err
	case <-time.After(30 * time.Second):
		g.t.Fatal("Run did not return 30s after shutdown began")
		return nil
	}
}

func (g *gateway) writePolicies(content string) {
	g.t.Helper()
	tmp := filepath.Join(g.dir, ".policies.yaml.tmp")
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		g.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(g.dir, "policies.yaml")); err != nil {
		g.t.Fatal(err)
	}
}

// token signs a token with the gateway's key: enginetest's claims, with
// claims added, replaced or (nil) removed.
func (g *gateway) token(claims map[string]any) string {
	g.t.Helper()
	return signToken(g.t, g.key, claims, nil)
}

// signToken signs enginetest's usual claims, changed by claims, with key
// and the extra protected header members.
func signToken(t testing.TB, key *mint.Key, claims, header map[string]any) string {
	t.Helper()
	now := time.Now().Unix()
	c := map[string]any{"iss": enginetest.Issuer, "sub": enginetest.Subject, "aud": enginetest.Audience, "oid": enginetest.OID, "iat": now, "exp": now + 3600}
	for k, v := range claims {
		if v == nil {
			delete(c, k)
			continue
		}
		c[k] = v
	}
	s, err := key.Sign(c, header)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (g *gateway) addr(setting string) string { return g.addrs[setting].String() }

// response is what a client got.
type response struct {
	status int
	header http.Header
	body   string
}

// raw writes request bytes to the proxy listener from 127.0.0.1 and reads
// one response; status 0 means the connection closed without one.
func (g *gateway) raw(req string) response {
	g.t.Helper()
	return rawFrom(g.t, "127.0.0.1", g.addr("listen"), req)
}

// rawFrom writes req on a new connection from the local address from to
// addr and reads one response, for at most 5 seconds.
func rawFrom(t testing.TB, from, addr, req string) response {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		return response{}
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return response{}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return response{status: resp.StatusCode, header: resp.Header, body: string(body)}
}

// do sends req (whose URL is relative to the proxy) from 127.0.0.1. A
// request that gets no response fails the test and has status 0.
func (g *gateway) do(req *http.Request) response {
	g.t.Helper()
	req.URL.Scheme, req.URL.Host = "http", g.addr("listen")
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		g.t.Errorf("%s %s: %v", req.Method, req.URL, err)
		return response{}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: string(body)}
}

// check asks the ext_authz gRPC service about a request from source.
func (g *gateway) check(method, host, target, source string, headers map[string]string) int {
	g.t.Helper()
	h := map[string]string{":authority": host, ":path": target, ":method": method, ":scheme": "http"}
	for k, v := range headers {
		h[strings.ToLower(k)] = v
	}
	req := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: source, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 40000}},
		}}},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: method, Host: host, Path: target, Scheme: "http", Protocol: "HTTP/1.1", Headers: h,
		}},
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := g.grpc.Check(ctx, req)
	if err != nil {
		g.t.Fatalf("ext_authz Check: %v", err)
	}
	if dr := resp.GetDeniedResponse(); dr != nil {
		return int(dr.GetStatus().GetCode())
	}
	return http.StatusOK
}

// auditRecord is the part of an audit record the tests read.
type auditRecord struct {
	RequestID string `json:"request_id"`
	Frontend  string `json:"frontend"`
	Decision  string `json:"decision"`
	Status    int    `json:"status"`
	Reason    string `json:"reason"`
	Path      string `json:"path"`
}

// records reads the audit file: every line must be a record.
func (g *gateway) records() []auditRecord {
	g.t.Helper()
	data, err := os.ReadFile(g.audit)
	if err != nil {
		g.t.Fatal(err)
	}
	var out []auditRecord
	for line := range strings.Lines(string(data)) {
		var r auditRecord
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			g.t.Fatalf("audit line %q: %v", line, err)
		}
		out = append(out, r)
	}
	return out
}

// checkUpstreamAllowed fails the test when the upstream saw a request
// that the audit trail does not show as allowed: every request that
// passes idgate was decided, and recorded, first. Call it after stop.
func (g *gateway) checkUpstreamAllowed() {
	g.t.Helper()
	allowed := map[string]bool{}
	for _, r := range g.records() {
		if r.Decision == "allow" {
			allowed[r.RequestID] = true
		}
	}
	for _, id := range g.up.ids() {
		if !allowed[id] {
			s := g.up.got(id)[0]
			g.t.Errorf("the upstream saw request %q (%s %s), which the audit trail does not show allowed", id, s.Method, s.URI)
		}
	}
}

// attack is one request an attacker sends, and what must come of it.
type attack struct {
	name   string
	method string // GET when empty
	target string // the request target, exactly as sent
	host   string // orders.example when empty
	// headers are header lines ("Name: value"), repeated names
	// included, sent as they are.
	headers []string
	from    string // the client's address; 127.0.0.1 when empty

	status int // what the client must get
	// upstream is the request target the upstream must see when the
	// request is allowed; "" means the target normalized is the same as
	// the one sent.
	upstream string
	// proxyOnly skips the ext_authz check: the attack is on HTTP/1.1
	// framing that an ext_authz check request cannot carry.
	proxyOnly bool
	// checkStatus is the ext_authz answer when it differs from status.
	checkStatus int
	// seen, when set, looks at what the upstream received.
	seen func(t *testing.T, s seen)
}

// run sends each attack through the reverse proxy (raw HTTP/1.1 from the
// attack's address) and, unless it is about HTTP/1.1 framing, through
// ext_authz gRPC as Envoy would ask; it checks the status, and that the
// upstream saw the request exactly once, with the authorized target, if
// and only if it was allowed.
func (g *gateway) run(t *testing.T, attacks []attack) {
	for i, a := range attacks {
		t.Run(a.name, func(t *testing.T) {
			if a.method == "" {
				a.method = http.MethodGet
			}
			if a.host == "" {
				a.host = "orders.example"
			}
			if a.from == "" {
				a.from = "127.0.0.1"
			}
			id := fmt.Sprintf("%s-%d", strings.ReplaceAll(t.Name(), "/", "."), i)
			id = strings.Map(func(r rune) rune {
				if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' {
					return r
				}
				return '_'
			}, id)
			if len(id) > 120 {
				id = id[len(id)-120:]
			}
			var b strings.Builder
			fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nX-Request-Id: %s\r\nConnection: close\r\n", a.method, a.target, a.host, id)
			for _, h := range a.headers {
				b.WriteString(h + "\r\n")
			}
			b.WriteString("\r\n")
			resp := rawFrom(t, a.from, g.addr("listen"), b.String())
			if resp.status != a.status {
				t.Errorf("proxy: status %d, want %d (body %q)", resp.status, a.status, resp.body)
			}
			got := g.up.got(id)
			switch {
			case a.status != http.StatusOK && len(got) > 0:
				t.Errorf("proxy: a request answered %d reached the upstream as %s %s", resp.status, got[0].Method, got[0].URI)
			case a.status == http.StatusOK && len(got) != 1:
				t.Errorf("proxy: the upstream saw the allowed request %d times, want once", len(got))
			case a.status == http.StatusOK:
				want := a.upstream
				if want == "" {
					want = a.target
				}
				if got[0].URI != want {
					t.Errorf("proxy: the upstream saw target %q, want %q", got[0].URI, want)
				}
				if a.seen != nil {
					a.seen(t, got[0])
				}
			}
			if a.proxyOnly {
				return
			}
			headers := map[string]string{"x-request-id": id}
			for _, h := range a.headers {
				name, value, _ := strings.Cut(h, ":")
				name, value = strings.ToLower(name), strings.TrimSpace(value)
				if prev, ok := headers[name]; ok {
					value = prev + "," + value // Envoy joins repeated headers
				}
				headers[name] = value
			}
			want := a.status
			if a.checkStatus != 0 {
				want = a.checkStatus
			}
			if got := g.check(a.method, a.host, a.target, a.from, headers); got != want {
				t.Errorf("ext_authz: status %d, want %d", got, want)
			}
		})
	}
}
