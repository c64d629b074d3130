package e2e

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idgate/idgate/config"
	"github.com/idgate/idgate/mint"
)

// get sends GET target with a bearer token (none when tok is "") and
// request id id through the proxy.
func (g *gateway) get(target, tok, id string) response {
	g.t.Helper()
	req, err := http.NewRequest(http.MethodGet, target, nil)
	if err != nil {
		g.t.Fatal(err)
	}
	req.Host = "orders.example"
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if id != "" {
		req.Header.Set("X-Request-Id", id)
	}
	return g.do(req)
}

// waitFor polls cond every 10ms until it holds, failing after 10s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting after 10s for %s", what)
		}
	}
}

// While the identity provider is broken in any way, tokens signed by keys
// already fetched keep passing, and tokens naming unknown keys fail at
// once with 401 without hammering the provider.
func TestFaultIdentityProviderBroken(t *testing.T) {
	const refresh = time.Second // the shortest the configuration allows
	for _, m := range []struct {
		name string
		mode idpMode
	}{{"down", idpDown}, {"slow", idpSlow}, {"garbage", idpGarbage}, {"empty key set", idpEmpty}} {
		t.Run(m.name, func(t *testing.T) {
			g := startGateway(t, gatewayOptions{config: func(c *config.Config) {
				c.Keys.MinRefreshInterval = config.Duration(refresh)
				c.Keys.RefreshInterval = config.Duration(refresh)
			}})
			valid := g.token(nil)
			if r := g.get("/api/orders", valid, ""); r.status != 200 {
				t.Fatalf("before the fault: %d", r.status)
			}
			g.idp.set(m.mode)
			// The background refresher meets the fault at least twice.
			base := g.idp.fetches.Load()
			waitFor(t, "two fetches from the broken provider", func() bool { return g.idp.fetches.Load() >= base+2 })
			for i := range 20 {
				if r := g.get("/api/orders", valid, fmt.Sprintf("known-%d", i)); r.status != 200 {
					t.Fatalf("a token signed by a fetched key got %d while the provider is %s", r.status, m.name)
				}
			}

			stranger, err := mint.NewKey("ES256")
			if err != nil {
				t.Fatal(err)
			}
			unknown := signToken(t, stranger, nil, nil)
			start, before := time.Now(), g.idp.fetches.Load()
			var wg sync.WaitGroup
			var wrong atomic.Int64
			for i := range 50 {
				wg.Go(func() {
					if r := g.get("/api/orders", unknown, fmt.Sprintf("unknown-%d", i)); r.status != 401 {
						wrong.Add(1)
					}
				})
			}
			wg.Wait()
			elapsed := time.Since(start)
			if n := wrong.Load(); n > 0 {
				t.Errorf("%d of 50 tokens with an unknown kid were not answered 401", n)
			}
			// At most one fetch per MinRefreshInterval, whatever the
			// number of unknown kids, plus the one in flight.
			fetched := g.idp.fetches.Load() - before
			if limit := int64(elapsed/refresh) + 2; fetched > limit {
				t.Errorf("50 unknown kids in %v caused %d fetches, more than the %d the refresh limit allows", elapsed, fetched, limit)
			}
			g.idp.set(idpUp)
		})
	}
}

// A provider that is down from the start: nothing is ready, every token is
// refused, anonymous access that the policies allow still works.
func TestFaultIdentityProviderDownFromStart(t *testing.T) {
	g := startGateway(t, gatewayOptions{idpMode: idpDown})
	if r := g.get("/api/orders", g.token(nil), ""); r.status != 401 {
		t.Errorf("a token with no keys fetched: %d, want 401", r.status)
	}
	if r := g.get("/public/logo.png", "", ""); r.status != 200 {
		t.Errorf("anonymous public GET: %d, want 200", r.status)
	}
	resp, err := http.Get("http://" + g.addr("admin-listen") + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/readyz = %d with no keys, want 503", resp.StatusCode)
	}
}

// load sends requests from workers goroutines until stop is closed,
// counting statuses other than want by status.
type load struct {
	mu    sync.Mutex
	sent  int
	wrong map[int]int
	ids   []string
}

func (l *load) run(t *testing.T, workers int, stop <-chan struct{}, send func(id string) int, want int) *sync.WaitGroup {
	var wg sync.WaitGroup
	l.wrong = map[int]int{}
	for w := range workers {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("load-%d-%d", w, i)
				st := send(id)
				l.mu.Lock()
				l.sent++
				l.ids = append(l.ids, id)
				if st != want {
					l.wrong[st]++
				}
				l.mu.Unlock()
			}
		})
	}
	return &wg
}

// Keys rotate under load as Entra rotates them: the new key is published,
// then used, then the old one withdrawn. No request fails on the way.
func TestFaultKeyRotationUnderLoad(t *testing.T) {
	g := startGateway(t, gatewayOptions{config: func(c *config.Config) {
		c.Keys.MinRefreshInterval = config.Duration(time.Second)
		c.Keys.RefreshInterval = config.Duration(time.Second)
	}})
	next, err := mint.NewKey("ES256")
	if err != nil {
		t.Fatal(err)
	}
	var current atomic.Pointer[string]
	tok := g.token(nil)
	current.Store(&tok)
	stop := make(chan struct{})
	var l load
	wg := l.run(t, 4, stop, func(id string) int { return g.get("/api/orders", *current.Load(), id).status }, 200)

	waitFor(t, "load", func() bool { l.mu.Lock(); defer l.mu.Unlock(); return l.sent > 50 })
	g.idp.publish(g.key, next)
	base := g.idp.fetches.Load()
	waitFor(t, "the new key fetched", func() bool { return g.idp.fetches.Load() > base })
	newTok := signToken(t, next, nil, nil)
	current.Store(&newTok)
	time.Sleep(50 * time.Millisecond)
	g.idp.publish(next)
	base = g.idp.fetches.Load()
	waitFor(t, "the old key withdrawn", func() bool { return g.idp.fetches.Load() > base+1 })
	waitFor(t, "more load", func() bool { l.mu.Lock(); defer l.mu.Unlock(); return l.sent > 300 })
	close(stop)
	wg.Wait()
	if len(l.wrong) > 0 {
		t.Errorf("across the rotation %d requests got statuses other than 200: %v", l.sent, l.wrong)
	}
	if r := g.get("/api/orders", tok, ""); r.status != 401 {
		t.Errorf("a token signed by the withdrawn key: %d, want 401", r.status)
	}
}

// An upstream that is down or too slow gets the client a 502 or 504 with
// a clear body; the decisions stay in the audit trail and no goroutine is
// left behind.
func TestFaultUpstream(t *testing.T) {
	release := make(chan struct{})
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/api/slow") {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
		io.WriteString(w, "upstream")
	})
	g := startGateway(t, gatewayOptions{upstream: slow, config: func(c *config.Config) {
		c.Timeouts.Upstream = config.Duration(200 * time.Millisecond)
	}})
	defer close(release)
	valid := g.token(nil)
	g.get("/api/orders", valid, "warm-up")
	baseline := runtime.NumGoroutine()

	var ids []string
	for i := range 10 {
		id := fmt.Sprintf("slow-%d", i)
		ids = append(ids, id)
		r := g.get("/api/slow", valid, id)
		if r.status != http.StatusGatewayTimeout || !strings.Contains(r.body, "upstream_timeout") || r.header.Get("X-Request-Id") != id {
			t.Errorf("slow upstream: %d %q with id %q, want 504 upstream_timeout with %s", r.status, r.body, r.header.Get("X-Request-Id"), id)
		}
	}
	g.up.Close() // down from now on
	for i := range 10 {
		id := fmt.Sprintf("down-%d", i)
		ids = append(ids, id)
		r := g.get("/api/orders", valid, id)
		if r.status != http.StatusBadGateway || !strings.Contains(r.body, "upstream_unavailable") {
			t.Errorf("upstream down: %d %q, want 502 upstream_unavailable", r.status, r.body)
		}
	}
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	waitFor(t, "goroutines back to the baseline", func() bool { return runtime.NumGoroutine() <= baseline+2 })

	if err := g.stop(); err != nil {
		t.Fatal(err)
	}
	allowed := map[string]bool{}
	for _, r := range g.records() {
		if r.Decision == "allow" {
			allowed[r.RequestID] = true
		}
	}
	for _, id := range ids {
		if !allowed[id] {
			t.Errorf("no audit record allows %s", id)
		}
	}
}

// Policies reloaded every few milliseconds under load: every decision is
// one the old or the new set makes, never a mixture, and a broken file
// never replaces the set in force.
func TestFaultPolicyReloadUnderLoad(t *testing.T) {
	g := startGateway(t, gatewayOptions{})
	// Set A allows /p (policy allow-a); set B denies it (deny-b). A mix
	// of B's ALLOW with A's DENY would answer no_allow_match, which
	// neither set does.
	set := func(allow, deny string) string {
		return fmt.Sprintf(`apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-%[1]s, namespace: orders}
spec:
  rules:
  - to:
    - operation: {paths: [%[2]s]}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-%[1]s, namespace: orders}
spec:
  action: DENY
  rules:
  - to:
    - operation: {paths: [%[3]s]}
`, map[bool]string{true: "a", false: "b"}[allow == "/p"], allow, deny)
	}
	setA, setB := set("/p", "/never"), set("/never", "/p")
	broken := "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: broken\nspec: [\n"
	g.writePolicies(setA)
	waitFor(t, "set A", func() bool { return g.get("/p", "", "").status == 200 })

	stop := make(chan struct{})
	var l load
	wg := l.run(t, 4, stop, func(id string) int { return g.get("/p", "", id).status }, 0)
	writes := 0
	for deadline := time.Now().Add(1500 * time.Millisecond); time.Now().Before(deadline); writes++ {
		switch writes % 3 {
		case 0:
			g.writePolicies(setB)
		case 1:
			g.writePolicies(broken)
		case 2:
			g.writePolicies(setA)
		}
		time.Sleep(30 * time.Millisecond)
	}
	close(stop)
	wg.Wait()

	// A broken file last: the set before it stays.
	g.writePolicies(setB)
	waitFor(t, "set B", func() bool { return g.get("/p", "", "").status == 403 })
	g.writePolicies(broken)
	time.Sleep(200 * time.Millisecond) // ten polls of the file
	if r := g.get("/p", "", ""); r.status != 403 {
		t.Errorf("after a broken file: %d, want set B's 403", r.status)
	}

	if err := g.stop(); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, r := range g.records() {
		if !strings.HasPrefix(r.RequestID, "load-") {
			continue
		}
		key := r.Decision + " " + r.Reason
		seen[key]++
		if key != "allow allowed_by_policy" && key != "deny denied_by_policy" {
			t.Errorf("request %s decided %q, which neither policy set decides", r.RequestID, key)
		}
	}
	t.Logf("%d policy writes, %d requests: %v", writes, l.sent, seen)
	if seen["allow allowed_by_policy"] == 0 || seen["deny denied_by_policy"] == 0 {
		t.Errorf("the load saw only one policy set (%v): the reloads did not happen under load", seen)
	}
}

// SIGTERM under load: requests in flight finish, new connections are
// refused, and every decision is in the audit file when Run returns.
func TestFaultShutdownUnderLoad(t *testing.T) {
	var inflight atomic.Int64
	release := make(chan struct{})
	hold := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inflight.Add(1)
		<-release
		io.WriteString(w, "upstream")
	})
	g := startGateway(t, gatewayOptions{upstream: hold, noCheck: true})
	valid := g.token(nil)
	const n = 20
	results := make(chan response, n)
	for i := range n {
		go func() { results <- g.get("/api/orders", valid, fmt.Sprintf("inflight-%d", i)) }()
	}
	waitFor(t, "requests in flight", func() bool { return inflight.Load() == n })

	stopped := make(chan error, 1)
	go func() { stopped <- g.stop() }()
	// New connections are refused once the listener is closed.
	waitFor(t, "the listener closed", func() bool {
		c, err := net.DialTimeout("tcp", g.addr("listen"), time.Second)
		if err != nil {
			return true
		}
		c.Close()
		return false
	})
	close(release)
	for range n {
		if r := <-results; r.status != 200 {
			t.Errorf("an in-flight request got %d during shutdown, want 200", r.status)
		}
	}
	if err := <-stopped; err != nil && !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Run: %v", err)
	}
	got := map[string]bool{}
	for _, r := range g.records() {
		got[r.RequestID] = true
	}
	for i := range n {
		if id := fmt.Sprintf("inflight-%d", i); !got[id] {
			t.Errorf("no audit record for %s after shutdown", id)
		}
	}
}
