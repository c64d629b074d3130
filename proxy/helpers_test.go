package proxy_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idgate/idgate/engine"
	"github.com/idgate/idgate/enginetest"
	"github.com/idgate/idgate/proxy"
)

// policies: a token is needed for the API and the websocket; /admin is for
// root only; /public is open; /ip-only admits the peer 127.0.0.2 (ipBlocks,
// source.ip); /local-only admits the client 127.0.0.1 (remoteIpBlocks,
// remote.ip).
const policies = `
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: shop}
spec:
  jwtRules:
  - issuer: https://issuer.example
    audiences: [api://orders]
    outputClaimToHeaders:
    - {header: x-user, claim: sub}
    - {header: x-tenant, claim: tid}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: api, namespace: shop}
spec:
  rules:
  - from:
    - source: {requestPrincipals: ["*"]}
    to:
    - operation: {paths: ["/api/*", "/ws", "/stream", "/slow", "/hold"]}
  - from:
    - source: {requestPrincipals: ["https://issuer.example/root"]}
    to:
    - operation: {paths: ["/admin"]}
  - to:
    - operation: {paths: ["/public/*"]}
  - from:
    - source: {ipBlocks: ["127.0.0.2/32"]}
    to:
    - operation: {paths: ["/ip-only"]}
  - from:
    - source: {remoteIpBlocks: ["127.0.0.1/32"]}
    to:
    - operation: {paths: ["/local-only"]}
`

// echo is what the test upstream reports about each request it got.
type echo struct {
	Method string
	URI    string
	Host   string
	Proto  int
	Header http.Header
	// ClientCert is the CommonName of the proxy's client certificate.
	ClientCert string
}

// env is a proxy in front of a test upstream, both on loopback.
type env struct {
	t        *testing.T
	fx       *enginetest.Fixture
	upstream *httptest.Server
	// hits counts requests the upstream received.
	hits  atomic.Int64
	proxy *proxy.Proxy
	srv   *proxy.Server
	// addr is the proxy's listening address; url its base URL.
	addr string
	url  string
}

type envOptions struct {
	engine engine.Options
	proxy  proxy.Options
	server proxy.ServerOptions
	// upstream handles the paths the echo handler does not.
	upstream http.Handler
	// upstreamURL replaces the test upstream (an unreachable one, say).
	upstreamURL string
	// upstreamPath is appended to the test upstream's URL.
	upstreamPath string
	// startUpstream starts the upstream; nil means a cleartext one.
	startUpstream func(*httptest.Server)
}

func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	e := &env{t: t, fx: enginetest.New(t, policies, o.engine)}

	e.upstream = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.hits.Add(1)
		w.Header().Set("X-Request-Id", "set-by-upstream")
		if o.upstream != nil && !strings.HasPrefix(r.URL.Path, "/api/") {
			o.upstream.ServeHTTP(w, r)
			return
		}
		rep := echo{Method: r.Method, URI: r.RequestURI, Host: r.Host, Proto: r.ProtoMajor, Header: r.Header}
		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
			rep.ClientCert = r.TLS.PeerCertificates[0].Subject.CommonName
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(rep)
	}))
	if o.startUpstream != nil {
		o.startUpstream(e.upstream)
	} else {
		e.upstream.Start()
	}
	t.Cleanup(e.upstream.Close)

	raw := e.upstream.URL + o.upstreamPath
	if o.upstreamURL != "" {
		raw = o.upstreamURL
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	e.proxy, err = proxy.New(e.fx.Engine, u, o.proxy)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.proxy.CloseIdleConnections)
	e.srv, err = proxy.NewServer(e.proxy, o.server)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- e.srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := e.srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve returned %v, want http.ErrServerClosed", err)
		}
	})
	e.addr = ln.Addr().String()
	scheme := "http"
	if o.server.CertFile != "" {
		scheme = "https"
	}
	e.url = scheme + "://" + e.addr
	return e
}

// token returns a token for alice, of tenant-1, with claims changed by
// over.
func (e *env) token(over map[string]any) string {
	e.t.Helper()
	c := map[string]any{"tid": "tenant-1"}
	for k, v := range over {
		c[k] = v
	}
	return e.fx.Token(e.t, c)
}

// client returns an HTTP/1.1 client of the proxy; its connections are
// closed when the test ends.
func (e *env) client(tr *http.Transport) *http.Client {
	if tr == nil {
		tr = &http.Transport{}
	}
	e.t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// result is a response, read whole.
type result struct {
	status int
	header http.Header
	body   string
	proto  int
}

func (e *env) do(c *http.Client, req *http.Request) result {
	e.t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("%s %s: read body: %v", req.Method, req.URL, err)
	}
	return result{status: resp.StatusCode, header: resp.Header, body: string(body), proto: resp.ProtoMajor}
}

func (e *env) get(c *http.Client, path, tok string, header http.Header) result {
	e.t.Helper()
	req, err := http.NewRequest("GET", e.url+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	return e.do(c, req)
}

// raw sends request (a request line and headers, without the final empty
// line) over a new connection as written, and reads the response.
func (e *env) raw(request string) result {
	e.t.Helper()
	conn, err := net.Dial("tcp", e.addr)
	if err != nil {
		e.t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, request+"\r\nConnection: close\r\n\r\n"); err != nil {
		e.t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		e.t.Fatalf("%q: %v", request, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return result{status: resp.StatusCode, header: resp.Header, body: string(body), proto: resp.ProtoMajor}
}

// echoed decodes what the upstream reported.
func (e *env) echoed(r result) echo {
	e.t.Helper()
	if r.status != http.StatusOK {
		e.t.Fatalf("status %d, want 200; body %q", r.status, r.body)
	}
	var rep echo
	if err := json.Unmarshal([]byte(r.body), &rep); err != nil {
		e.t.Fatalf("upstream report %q: %v", r.body, err)
	}
	return rep
}

// checkDenied checks r is idgate's own denial with status and reason.
func checkDenied(t *testing.T, r result, status int, reason string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %q", r.status, status, r.body)
	}
	id := r.header.Get("X-Request-Id")
	if id == "" {
		t.Error("no X-Request-Id")
	}
	want := fmt.Sprintf("%s: %s\nrequest id: %s\n", http.StatusText(status), reason, id)
	if r.body != want {
		t.Errorf("body %q, want %q", r.body, want)
	}
}

// pki is a test certificate authority.
type pki struct {
	cert  *x509.Certificate
	key   *ecdsa.PrivateKey
	pem   []byte
	dir   string
	count int64
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "idgate test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	p := &pki{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), dir: t.TempDir(), count: 1}
	return p
}

// issue returns a certificate for 127.0.0.1 and localhost (server) or
// for a client called cn, with a new serial number.
func (p *pki) issue(t *testing.T, cn string, client bool) (certPEM, keyPEM []byte, serial int64) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p.count++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(p.count),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
	}
	if client {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
		tmpl.IPAddresses, tmpl.DNSNames = nil, nil
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.cert, &key.PublicKey, p.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), p.count
}

// write writes data to name in p's directory and returns its path.
func (p *pki) write(t *testing.T, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(p.dir, name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func (p *pki) pool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(p.cert)
	return pool
}

// tlsConfig is a client TLS configuration trusting p.
func (p *pki) tlsConfig() *tls.Config {
	return &tls.Config{RootCAs: p.pool(), MinVersion: tls.VersionTLS12}
}

// leakedGoroutines returns the stacks of goroutines left in the HTTP
// machinery or this package, waiting up to a few seconds for those that
// are ending.
func leakedGoroutines() []string {
	var leaked []string
	for range 50 {
		leaked = leaked[:0]
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		for _, g := range strings.Split(string(buf), "\n\n") {
			if strings.Contains(g, "leakedGoroutines") || strings.Contains(g, "testing.(*M).") {
				continue
			}
			if strings.Contains(g, "net/http") || strings.Contains(g, "idgate/proxy") || strings.Contains(g, "x/net/websocket") {
				leaked = append(leaked, g)
			}
		}
		if len(leaked) == 0 {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return leaked
}

func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if leaked := leakedGoroutines(); len(leaked) > 0 {
			fmt.Fprintf(os.Stderr, "%d goroutines leaked:\n\n%s\n", len(leaked), strings.Join(leaked, "\n\n"))
			code = 1
		}
	}
	os.Exit(code)
}
