package proxy_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/websocket"

	"github.com/idgate/idgate/proxy"
)

// guard bounds a test that would otherwise hang when the proxy holds data
// back; it says nothing about speed.
const guard = time.Minute

// A large response streams through: the client has each piece before the
// upstream writes the next, and the proxy does not hold the body in
// memory.
func TestLargeStreamingResponse(t *testing.T) {
	const (
		total    = 64 << 20
		chunk    = 1 << 20
		lockstep = 8 // chunks the upstream writes only once the client has the previous one
	)
	piece := make([]byte, chunk)
	for i := range piece {
		piece[i] = byte(i*7 + i>>10)
	}
	acks := make(chan struct{})
	e := newEnv(t, envOptions{upstream: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		w.Header().Set("Content-Type", "application/octet-stream")
		for i := range total / chunk {
			if _, err := w.Write(piece); err != nil {
				return
			}
			if err := rc.Flush(); err != nil {
				return
			}
			if i < lockstep {
				select {
				case <-acks:
				case <-r.Context().Done():
					return
				}
			}
		}
	})})
	c := e.client(nil)
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", e.url+"/stream", nil)
	req.Header.Set("Authorization", "Bearer "+e.token(nil))

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)

	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("X-Request-Id") == "" {
		t.Fatalf("status %d, X-Request-Id %q", resp.StatusCode, resp.Header.Get("X-Request-Id"))
	}
	h := sha256.New()
	buf := make([]byte, chunk)
	for i := range lockstep {
		if _, err := io.ReadFull(resp.Body, buf); err != nil {
			t.Fatalf("chunk %d: %v", i, err)
		}
		h.Write(buf)
		acks <- struct{}{}
	}
	rest, err := io.CopyBuffer(h, resp.Body, buf)
	if err != nil {
		t.Fatal(err)
	}

	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if got := int64(lockstep*chunk) + rest; got != total {
		t.Fatalf("got %d bytes, want %d", got, total)
	}
	want := sha256.New()
	for range total / chunk {
		want.Write(piece)
	}
	if string(h.Sum(nil)) != string(want.Sum(nil)) {
		t.Error("the body differs from what the upstream sent")
	}
	// Client, proxy and upstream share this process: everything any of
	// them allocated counts. A proxy that buffered the body would
	// allocate at least its size.
	t.Logf("allocated %d KiB", (after.TotalAlloc-before.TotalAlloc)>>10)
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > total/4 {
		t.Errorf("%d MiB allocated while streaming %d MiB", alloc>>20, total>>20)
	}
}

// Server-sent events reach the client one by one, each before the
// upstream writes the next: the proxy flushes small writes at once.
func TestServerSentEvents(t *testing.T) {
	const events = 5
	acks := make(chan struct{})
	e := newEnv(t, envOptions{upstream: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		rc := http.NewResponseController(w)
		for i := range events {
			fmt.Fprintf(w, "data: %d\n\n", i)
			rc.Flush()
			select {
			case <-acks:
			case <-r.Context().Done():
				return
			}
		}
	})})
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", e.url+"/stream", nil)
	req.Header.Set("Authorization", "Bearer "+e.token(nil))
	for _, tr := range []*http.Transport{nil, h2cTransport()} {
		resp, err := e.client(tr).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(resp.Body)
		for i := range events {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("HTTP/%d event %d: %v", resp.ProtoMajor, i, err)
			}
			if want := fmt.Sprintf("data: %d\n", i); line != want {
				t.Fatalf("HTTP/%d event %d: %q, want %q", resp.ProtoMajor, i, line, want)
			}
			br.ReadString('\n')
			acks <- struct{}{}
		}
		resp.Body.Close()
	}
}

func h2cTransport() *http.Transport {
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	return tr
}

// wsUpstream greets with the identity it got, then echoes.
var wsUpstream = websocket.Handler(func(ws *websocket.Conn) {
	r := ws.Request()
	websocket.Message.Send(ws, fmt.Sprintf("hello %s at %s", r.Header.Get("X-User"), r.URL.Path))
	for {
		var m string
		if websocket.Message.Receive(ws, &m) != nil || websocket.Message.Send(ws, m) != nil {
			return
		}
	}
})

func dialWS(e *env, path, tok string) (*websocket.Conn, error) {
	cfg, err := websocket.NewConfig("ws://"+e.addr+path, "http://"+e.addr)
	if err != nil {
		return nil, err
	}
	cfg.Header.Set("X-User", "root")
	if tok != "" {
		cfg.Header.Set("Authorization", "Bearer "+tok)
	}
	return websocket.DialConfig(cfg)
}

// A WebSocket upgrade is decided first: allowed, it reaches the upstream
// with the identity headers and echoes both ways; denied, it never reaches
// the upstream.
func TestWebSocket(t *testing.T) {
	e := newEnv(t, envOptions{upstream: wsUpstream})
	ws, err := dialWS(e, "/x/../ws", e.token(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	ws.SetDeadline(time.Now().Add(guard))
	var msg string
	if err := websocket.Message.Receive(ws, &msg); err != nil || msg != "hello alice at /ws" {
		t.Fatalf("greeting %q, %v; want %q", msg, err, "hello alice at /ws")
	}
	for _, m := range []string{"ping", strings.Repeat("x", 100<<10)} {
		if err := websocket.Message.Send(ws, m); err != nil {
			t.Fatal(err)
		}
		var got string
		if err := websocket.Message.Receive(ws, &got); err != nil || got != m {
			t.Fatalf("echo of %.10q = %.10q, %v", m, got, err)
		}
	}

	// The 101 response carries the request id like any other.
	upgrade := "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
		"Origin: http://x\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nX-Request-Id: ws-1"
	if r := e.raw(upgrade + "\r\nAuthorization: Bearer " + e.token(nil)); r.status != 101 || r.header.Get("X-Request-Id") != "ws-1" {
		t.Errorf("upgrade: %d with X-Request-Id %q, want 101 with ws-1", r.status, r.header.Get("X-Request-Id"))
	}

	before := e.hits.Load()
	if _, err := dialWS(e, "/ws", ""); err == nil {
		t.Error("upgrade without a token succeeded")
	}
	checkDenied(t, e.raw(upgrade), 403, "no_allow_match")
	checkDenied(t, e.raw(upgrade+"\r\nAuthorization: Bearer "+e.token(map[string]any{"exp": 1000})), 401, "expired")
	if h := e.hits.Load() - before; h != 0 {
		t.Errorf("denied upgrades reached the upstream %d times", h)
	}
}

// An upstream that cannot be reached is a 502, one too slow a 504; both
// answered by idgate with the request id.
func TestUpstreamFailures(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + ln.Addr().String()
	ln.Close()
	block := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })

	tests := []struct {
		name   string
		opts   envOptions
		status int
		reason string
	}{
		{"down", envOptions{upstreamURL: down}, 502, "upstream_unavailable"},
		{"slow", envOptions{upstream: block, proxy: proxy.Options{UpstreamTimeout: 50 * time.Millisecond}}, 504, "upstream_timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, tt.opts)
			c := e.client(nil)
			r := e.get(c, "/slow", e.token(nil), http.Header{"X-Request-Id": {"fail-1"}})
			checkDenied(t, r, tt.status, tt.reason)
			if r.header.Get("X-Request-Id") != "fail-1" {
				t.Errorf("X-Request-Id %q, want fail-1", r.header.Get("X-Request-Id"))
			}
			// The proxy stays usable.
			r = e.get(c, "/slow", e.token(nil), nil)
			checkDenied(t, r, tt.status, tt.reason)
		})
	}
}
