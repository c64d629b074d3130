package proxy_test

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/websocket"

	"github.com/idgate/idgate/proxy"
)

// Shutdown stops taking connections but lets a request in flight finish.
func TestShutdownDrainsInFlightRequests(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	e := newEnv(t, envOptions{upstream: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		select {
		case <-release:
			io.WriteString(w, "done")
		case <-r.Context().Done():
		}
	})})
	c := e.client(nil)
	type outcome struct {
		status int
		body   string
		err    error
	}
	res := make(chan outcome, 1)
	go func() {
		req, _ := http.NewRequest("GET", e.url+"/hold", nil)
		req.Header.Set("Authorization", "Bearer "+e.token(nil))
		resp, err := c.Do(req)
		if err != nil {
			res <- outcome{err: err}
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		res <- outcome{resp.StatusCode, string(body), err}
	}()
	<-started

	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	shut := make(chan error, 1)
	go func() { shut <- e.srv.Shutdown(ctx) }()
	// Once the listener refuses connections, shutdown is under way.
	for {
		conn, err := net.Dial("tcp", e.addr)
		if err != nil {
			break
		}
		conn.Close()
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned (%v) while a request was in flight", err)
	default:
	}
	close(release)
	if o := <-res; o.err != nil || o.status != 200 || o.body != "done" {
		t.Errorf("in-flight request: %d %q %v, want 200 done", o.status, o.body, o.err)
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

// Shutdown ends upgraded connections, which http.Server does not track,
// and returns once their handlers are done.
func TestShutdownEndsWebSockets(t *testing.T) {
	e := newEnv(t, envOptions{upstream: wsUpstream})
	ws, err := dialWS(e, "/ws", e.token(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	var msg string
	if err := websocket.Message.Receive(ws, &msg); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	if err := e.srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	ws.SetDeadline(time.Now().Add(guard))
	if err := websocket.Message.Receive(ws, &msg); err == nil {
		t.Errorf("the connection is still open after Shutdown: got %q", msg)
	}
}

// The TLS certificate is reloaded when its files change; a broken or
// mismatched pair leaves the one in force.
func TestCertificateReload(t *testing.T) {
	ca := newPKI(t)
	cert1, key1, serial1 := ca.issue(t, "proxy", false)
	certFile, keyFile := ca.write(t, "cert.pem", cert1), ca.write(t, "key.pem", key1)
	e := newEnv(t, envOptions{server: proxy.ServerOptions{CertFile: certFile, KeyFile: keyFile, CertCheckInterval: time.Nanosecond}})
	served := func() int64 {
		t.Helper()
		conn, err := tls.Dial("tcp", e.addr, ca.tlsConfig())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
	}
	if got := served(); got != serial1 {
		t.Fatalf("serial %d, want %d", got, serial1)
	}

	cert2, key2, serial2 := ca.issue(t, "proxy", false)
	ca.write(t, "cert.pem", cert2)
	ca.write(t, "key.pem", key2)
	if got := served(); got != serial2 {
		t.Fatalf("after renewal: serial %d, want %d", got, serial2)
	}

	cert3, key3, serial3 := ca.issue(t, "proxy", false)
	ca.write(t, "cert.pem", cert3) // the key is not written yet
	if got := served(); got != serial2 {
		t.Errorf("with a key that does not match: serial %d, want the previous %d", got, serial2)
	}
	ca.write(t, "key.pem", []byte("garbage"))
	if got := served(); got != serial2 {
		t.Errorf("with a broken key: serial %d, want the previous %d", got, serial2)
	}
	ca.write(t, "key.pem", key3)
	if got := served(); got != serial3 {
		t.Errorf("once both files are written: serial %d, want %d", got, serial3)
	}
	// Requests are served with the new certificate.
	c := e.client(&http.Transport{TLSClientConfig: ca.tlsConfig()})
	if r := e.get(c, "/public/x", "", nil); r.status != 200 {
		t.Errorf("status %d, want 200", r.status)
	}
}

// The files are looked at no more often than the check interval.
func TestCertificateCheckInterval(t *testing.T) {
	ca := newPKI(t)
	cert1, key1, serial1 := ca.issue(t, "proxy", false)
	certFile, keyFile := ca.write(t, "cert.pem", cert1), ca.write(t, "key.pem", key1)
	r, err := proxy.NewCertReloader(certFile, keyFile, time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	cert2, key2, _ := ca.issue(t, "proxy", false)
	ca.write(t, "cert.pem", cert2)
	ca.write(t, "key.pem", key2)
	c, err := r.GetCertificate(&tls.ClientHelloInfo{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Leaf.SerialNumber.Int64() != serial1 {
		t.Errorf("serial %d within the interval, want the first %d", c.Leaf.SerialNumber, serial1)
	}
}

func TestNewServerErrors(t *testing.T) {
	ca := newPKI(t)
	cert, _, _ := ca.issue(t, "proxy", false)
	_, otherKey, _ := ca.issue(t, "proxy", false)
	certFile := ca.write(t, "cert.pem", cert)
	tests := []struct {
		name string
		opts proxy.ServerOptions
		want string
	}{
		{"cert without key", proxy.ServerOptions{CertFile: certFile}, "both"},
		{"missing file", proxy.ServerOptions{CertFile: certFile, KeyFile: ca.dir + "/none.pem"}, "none.pem"},
		{"mismatched key", proxy.ServerOptions{CertFile: certFile, KeyFile: ca.write(t, "other.pem", otherKey)}, "private key does not match"},
	}
	for _, tt := range tests {
		_, err := proxy.NewServer(http.NotFoundHandler(), tt.opts)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want one about %q", tt.name, err, tt.want)
		}
	}
}
