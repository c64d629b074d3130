package e2e

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idgate/idgate/engine"
	"github.com/idgate/idgate/enginetest"
	"github.com/idgate/idgate/request"
)

const issuer = "https://issuer.example"

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

// fixture is an engine over testdata/policies.yaml whose jwtRules trust
// its key, and a record of every decision it made, by request id.
type fixture struct {
	*enginetest.Fixture

	mu        sync.Mutex
	decisions map[string]decided
}

// decided is one decision the engine made, and for which front end.
type decided struct {
	frontend string
	d        engine.Decision
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	src, err := os.ReadFile("testdata/policies.yaml")
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{decisions: map[string]decided{}}
	f.Fixture = enginetest.New(t, string(src), engine.Options{Observer: f})
	return f
}

// Decided records d under a's request id (engine.Observer).
func (f *fixture) Decided(a *request.Attributes, d engine.Decision, _ time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.decisions[a.RequestID] = decided{frontend: a.Frontend, d: d}
}

// Reloaded is part of engine.Observer.
func (f *fixture) Reloaded(error) {}

// decision returns the decision made for request id.
func (f *fixture) decision(id string) (decided, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, ok := f.decisions[id]
	return d, ok
}

func (f *fixture) token(t testing.TB, claims map[string]any) string { return f.Token(t, claims) }

// echoed is what the upstream echo server saw of a request.
type echoed struct {
	Method string      `json:"method"`
	URI    string      `json:"uri"`
	Host   string      `json:"host"`
	Header http.Header `json:"header"`
}

// upstream is an echo server that counts its requests.
type upstream struct {
	*httptest.Server
	hits atomic.Int64
}

func newUpstream(t testing.TB) *upstream {
	t.Helper()
	u := &upstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(echoed{Method: r.Method, URI: r.RequestURI, Host: r.Host, Header: r.Header})
	}))
	t.Cleanup(u.Close)
	return u
}
