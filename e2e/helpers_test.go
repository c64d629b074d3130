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

	securityv1beta1 "istio.io/api/security/v1beta1"

	"github.com/idgate/idgate/engine"
	"github.com/idgate/idgate/mint"
	"github.com/idgate/idgate/policy"
	"github.com/idgate/idgate/request"
	"github.com/idgate/idgate/token"
)

const issuer = "https://issuer.example"

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

// fixture is an engine over testdata/policies.yaml whose keys are key's,
// and a record of every decision it made, by request id.
type fixture struct {
	key *mint.Key
	eng *engine.Engine

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
	key, err := mint.NewKey("ES256")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("testdata/policies.yaml")
	if err != nil {
		t.Fatal(err)
	}
	docs, err := policy.Parse("testdata/policies.yaml", src)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{key: key, decisions: map[string]decided{}}
	keys := token.StaticKeys{key.PublicKey()}
	f.eng, err = engine.New(docs, engine.Options{
		Keys:     func(*securityv1beta1.JWTRule) (token.KeySource, error) { return keys, nil },
		Observer: f,
	})
	if err != nil {
		t.Fatal(err)
	}
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

// token signs a token the policies accept, with claims added, replaced
// or (nil) removed.
func (f *fixture) token(t testing.TB, claims map[string]any) string {
	t.Helper()
	now := time.Now().Unix()
	c := map[string]any{"iss": issuer, "sub": "alice", "aud": "api://orders", "oid": "oid-alice", "iat": now, "exp": now + 3600}
	for k, v := range claims {
		if v == nil {
			delete(c, k)
			continue
		}
		c[k] = v
	}
	s, err := f.key.Sign(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

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
