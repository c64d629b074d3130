package keyset

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/idgate/idgate/token"
)

// testKeys holds one generated P-256 key per kid, so that the JWK Sets the
// tests serve are real keys and a kid always names the same key.
var testKeys sync.Map

// jwk returns the public JWK of kid's test key.
func jwk(t testing.TB, kid string) map[string]any {
	t.Helper()
	v, ok := testKeys.Load(kid)
	if !ok {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		v, _ = testKeys.LoadOrStore(kid, k)
	}
	pub, err := v.(*ecdsa.PrivateKey).PublicKey.Bytes() // 0x04 || X || Y
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.RawURLEncoding.EncodeToString
	return map[string]any{
		"kty": "EC", "crv": "P-256", "use": "sig", "kid": kid,
		"x": b64(pub[1:33]), "y": b64(pub[33:]),
	}
}

// jwks returns a JWK Set with the test keys of kids.
func jwks(t testing.TB, kids ...string) []byte {
	t.Helper()
	keys := []any{}
	for _, kid := range kids {
		keys = append(keys, jwk(t, kid))
	}
	data, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// kidsOf returns the sorted key IDs of keys.
func kidsOf(keys []token.Key) []string {
	ids := kids(keys)
	slices.Sort(ids)
	return ids
}

// wantKids fails the test unless keys have exactly the key IDs want.
func wantKids(t testing.TB, keys []token.Key, want ...string) {
	t.Helper()
	slices.Sort(want)
	if got := kidsOf(keys); !slices.Equal(got, want) {
		t.Fatalf("kids = %q, want %q", got, want)
	}
}

// idp is an identity provider over real HTTP on loopback: it serves
// whatever each path was last given and counts the requests per path.
type idp struct {
	srv *httptest.Server

	mu     sync.Mutex
	routes map[string]route
	hits   map[string]int
}

type route struct {
	status int
	body   []byte
	header http.Header
	// hold, when non-nil, stalls the response until it is closed or the
	// client gives up: before the headers, or with stallBody after the
	// headers and the first bytes of the body.
	hold      chan struct{}
	stallBody bool
}

func newIDP(t testing.TB) *idp {
	p := &idp{routes: map[string]route{}, hits: map[string]int{}}
	p.srv = httptest.NewServer(http.HandlerFunc(p.handle))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *idp) handle(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	p.hits[r.URL.Path]++
	rt, ok := p.routes[r.URL.Path]
	p.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	wait := func() bool {
		select {
		case <-rt.hold:
			return true
		case <-r.Context().Done():
			return false
		}
	}
	if rt.hold != nil && !rt.stallBody && !wait() {
		return
	}
	for k, v := range rt.header {
		w.Header()[k] = v
	}
	w.WriteHeader(rt.status)
	if rt.hold != nil && rt.stallBody {
		half := len(rt.body) / 2
		w.Write(rt.body[:half])
		w.(http.Flusher).Flush()
		if !wait() {
			return
		}
		rt.body = rt.body[half:]
	}
	w.Write(rt.body)
}

// set makes path answer with status and body.
func (p *idp) set(path string, status int, body []byte) {
	p.setRoute(path, route{status: status, body: body})
}

func (p *idp) setRoute(path string, rt route) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.routes[path] = rt
}

// keys makes path serve a JWK Set with the test keys of kids.
func (p *idp) keys(t testing.TB, path string, kids ...string) {
	p.set(path, http.StatusOK, jwks(t, kids...))
}

func (p *idp) count(path string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.hits[path]
}

func (p *idp) url(path string) string { return p.srv.URL + path }

// clock is a settable clock for Config.now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// logBuf collects log output from several goroutines.
type logBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// newSet creates a Set for cfg with clk (nil: the real clock) and a
// captured log, and closes it when the test ends.
func newSet(t testing.TB, cfg Config, clk *clock) (*Set, *logBuf) {
	t.Helper()
	logs := &logBuf{}
	cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if clk != nil {
		cfg.now = clk.Now
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, logs
}

// eventually polls cond until it holds, failing the test after a generous
// deadline (it asserts that something happens, never how fast).
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting: %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// wantNoSetGoroutines fails the test unless every goroutine running Set
// code ends (goroutines that have finished their work may take a moment
// to return, so it waits for them).
func wantNoSetGoroutines(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		g := setGoroutines()
		if len(g) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Set goroutines still running:\n%s", strings.Join(g, "\n\n"))
		}
		time.Sleep(time.Millisecond)
	}
}

// setGoroutines returns the stacks of goroutines running Set code.
func setGoroutines() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var found []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "idgate/keyset.(*Set)") {
			found = append(found, g)
		}
	}
	return found
}

// wantErr fails the test unless err is non-nil and its message contains
// every one of parts.
func wantErr(t testing.TB, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("error = nil, want one containing %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Fatalf("error %q does not contain %q", err, p)
		}
	}
}
