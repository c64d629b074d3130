package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// HTTP-level abuse of the reverse proxy: oversized and numerous headers,
// slow clients, request smuggling shapes and upgrade tricks. Whatever the
// framing, the upstream sees only requests idgate decided and allowed
// (startGateway checks every one against the audit trail).
func TestAttackHTTP(t *testing.T) {
	g := startGateway(t, gatewayOptions{})
	valid := g.token(nil)
	auth := "Authorization: Bearer " + valid + "\r\n"

	t.Run("oversized header", func(t *testing.T) {
		r := g.raw("GET /public/x HTTP/1.1\r\nHost: orders.example\r\nX-Big: " + strings.Repeat("a", 40<<10) + "\r\n\r\n")
		if r.status != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("status %d, want 431", r.status)
		}
	})
	t.Run("thousands of headers", func(t *testing.T) {
		var b strings.Builder
		b.WriteString("GET /public/x HTTP/1.1\r\nHost: orders.example\r\n")
		for i := range 5000 {
			fmt.Fprintf(&b, "X-H%d: v\r\n", i)
		}
		b.WriteString("\r\n")
		if r := g.raw(b.String()); r.status != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("status %d, want 431", r.status)
		}
	})
	t.Run("oversized token", func(t *testing.T) {
		r := g.raw("GET /api/orders HTTP/1.1\r\nHost: orders.example\r\nAuthorization: Bearer " + strings.Repeat("A", 40<<10) + "\r\n\r\n")
		if r.status != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("status %d, want 431", r.status)
		}
	})

	t.Run("slow headers", func(t *testing.T) {
		// A slowloris client sends a few header bytes at a time: the
		// connection is closed once read-header (1s here) passes.
		c := dial(t, g.addr("listen"))
		io.WriteString(c, "GET /api/orders HTTP/1.1\r\nHost: orders.example\r\n")
		closed := make(chan error, 1)
		go func() {
			for i := 0; ; i++ {
				if _, err := fmt.Fprintf(c, "X-Slow-%d: 1\r\n", i); err != nil {
					closed <- err
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
		}()
		select {
		case <-closed:
		case <-time.After(10 * time.Second):
			t.Fatal("a client sending headers slowly was still connected after 10s")
		}
	})
	t.Run("slow body to a denied path", func(t *testing.T) {
		// A body that never comes does not hold the answer to a request
		// that is denied anyway.
		c := dial(t, g.addr("listen"))
		io.WriteString(c, "POST /api/admin HTTP/1.1\r\nHost: orders.example\r\nX-Request-Id: slow-body\r\n"+auth+"Content-Length: 100000\r\n\r\nabc")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("status %d, want 403", resp.StatusCode)
		}
		if len(g.up.got("slow-body")) != 0 {
			t.Error("the denied request reached the upstream")
		}
	})

	// Smuggling: a second request hidden in the first's body must never
	// reach the upstream undecided. The hidden one asks for the denied
	// /api/admin with a valid token.
	hidden := "GET /api/admin HTTP/1.1\r\nHost: orders.example\r\nX-Request-Id: smuggled\r\n" + auth + "\r\n"
	for _, s := range []struct{ name, req string }{
		{"CL and TE", "POST /api/orders HTTP/1.1\r\nHost: orders.example\r\n" + auth +
			fmt.Sprintf("Content-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 5+len(hidden)) + hidden},
		{"TE and CL", "POST /api/orders HTTP/1.1\r\nHost: orders.example\r\n" + auth +
			"Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n" + fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(hidden), hidden)},
		{"duplicate CL", "POST /api/orders HTTP/1.1\r\nHost: orders.example\r\n" + auth +
			fmt.Sprintf("Content-Length: 0\r\nContent-Length: %d\r\n\r\n", len(hidden)) + hidden},
		{"CL with a list", "POST /api/orders HTTP/1.1\r\nHost: orders.example\r\n" + auth +
			fmt.Sprintf("Content-Length: 0, %d\r\n\r\n", len(hidden)) + hidden},
		{"TE obfuscated", "POST /api/orders HTTP/1.1\r\nHost: orders.example\r\n" + auth +
			fmt.Sprintf("Transfer-Encoding: xchunked\r\nContent-Length: %d\r\n\r\n", len(hidden)) + hidden},
		{"TE with a space before the colon", "POST /api/orders HTTP/1.1\r\nHost: orders.example\r\n" + auth +
			"Transfer-Encoding : chunked\r\nContent-Length: 0\r\n\r\n" + hidden},
		{"TE chunked twice", "POST /api/orders HTTP/1.1\r\nHost: orders.example\r\n" + auth +
			"Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n" + hidden},
		{"bare LF", "POST /api/orders HTTP/1.1\nHost: orders.example\n" + strings.TrimSuffix(auth, "\r\n") + "\nContent-Length: 0\n\n" + hidden},
		{"obs-fold", "POST /api/orders HTTP/1.1\r\nHost: orders.example\r\n" + auth + "X-A: a\r\n Content-Length: 0\r\n\r\n" + hidden},
		{"HTTP/1.0 keep-alive", "POST /api/orders HTTP/1.0\r\nHost: orders.example\r\nConnection: keep-alive\r\n" + auth + "\r\n" + hidden},
	} {
		t.Run("smuggling: "+s.name, func(t *testing.T) {
			for _, r := range rawAll(t, g.addr("listen"), s.req) {
				if r.status == http.StatusOK && r.header.Get("X-Request-Id") == "smuggled" {
					t.Error("the hidden request for /api/admin was answered 200")
				}
			}
			if got := g.up.got("smuggled"); len(got) > 0 {
				t.Errorf("the hidden request reached the upstream: %s %s", got[0].Method, got[0].URI)
			}
		})
	}

	t.Run("h2c upgrade", func(t *testing.T) {
		// An upstream that accepted the upgrade would then take HTTP/2
		// requests on that connection that idgate never decides
		// (h2c smuggling): the upgrade must not reach it.
		r := g.raw("GET /api/orders HTTP/1.1\r\nHost: orders.example\r\nX-Request-Id: h2c-allowed\r\n" + auth +
			"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n")
		if r.status == http.StatusSwitchingProtocols {
			t.Fatal("the h2c upgrade was switched")
		}
		for _, s := range g.up.got("h2c-allowed") {
			if s.Header.Get("Upgrade") != "" || s.Header.Get("Http2-Settings") != "" {
				t.Errorf("the upstream got the upgrade: Upgrade %q, HTTP2-Settings %q", s.Header.Get("Upgrade"), s.Header.Get("Http2-Settings"))
			}
		}
		r = g.raw("GET /api/admin HTTP/1.1\r\nHost: orders.example\r\nX-Request-Id: h2c-denied\r\n" + auth +
			"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n")
		if r.status != http.StatusForbidden {
			t.Errorf("h2c upgrade to a denied path: %d, want 403", r.status)
		}
	})
	t.Run("websocket upgrade to a denied path", func(t *testing.T) {
		r := g.raw("GET /ws/admin HTTP/1.1\r\nHost: orders.example\r\nX-Request-Id: ws-denied\r\n" + auth +
			"Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
		if r.status != http.StatusForbidden {
			t.Errorf("status %d, want 403", r.status)
		}
		if len(g.up.got("ws-denied")) != 0 {
			t.Error("the denied upgrade reached the upstream")
		}
	})
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c
}

// rawAll writes req and reads every response until the connection closes
// or is idle for a second.
func rawAll(t *testing.T, addr, req string) []response {
	t.Helper()
	c := dial(t, addr)
	io.WriteString(c, req)
	br := bufio.NewReader(c)
	var out []response
	for {
		c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return out
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		out = append(out, response{status: resp.StatusCode, header: resp.Header, body: string(body)})
	}
}
