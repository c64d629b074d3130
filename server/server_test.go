package server

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
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

	"github.com/idgate/idgate/config"
	"github.com/idgate/idgate/mint"
)

const issuer = "https://issuer.example"

// policies returns a RequestAuthentication trusting key inline (no
// network) and an ALLOW policy for paths.
func policies(key *mint.Key, paths string) string {
	jwks, _ := json.Marshal(string(key.JWKS()))
	return `apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: foo}
spec:
  jwtRules:
  - issuer: ` + issuer + `
    jwks: ` + string(jwks) + `
    outputClaimToHeaders:
    - {header: x-user, claim: sub}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow, namespace: foo}
spec:
  rules:
  - from:
    - source: {requestPrincipals: ["*"]}
    to:
    - operation: {paths: ` + paths + `}
`
}

type harness struct {
	t        *testing.T
	key      *mint.Key
	dir      string
	addrs    map[string]net.Addr
	upstream atomic.Int64
	cancel   context.CancelFunc
	done     chan error
}

func start(t *testing.T, mutate func(*config.Config)) *harness {
	t.Helper()
	key, err := mint.NewKey("")
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, key: key, dir: t.TempDir(), done: make(chan error, 1)}
	h.write("policies.yaml", policies(key, `["/api/*"]`))
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.upstream.Add(1)
		w.Header().Set("X-Seen-User", r.Header.Get("X-User"))
		io.WriteString(w, "upstream "+r.URL.Path)
	}))
	t.Cleanup(up.Close)
	cfg := config.Defaults()
	cfg.Policies = []string{filepath.Join(h.dir, "policies.yaml")}
	cfg.Listen = "127.0.0.1:0"
	cfg.Upstream = up.URL
	cfg.GRPCListen = "127.0.0.1:0"
	cfg.AuthzListen = "127.0.0.1:0"
	cfg.AdminListen = "127.0.0.1:0"
	cfg.Audit = filepath.Join(h.dir, "audit.jsonl")
	cfg.TrustedProxies = 1
	if mutate != nil {
		mutate(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan map[string]net.Addr, 1)
	s, err := New(cfg, Options{Logger: quiet, PollInterval: 20 * time.Millisecond, Ready: func(a map[string]net.Addr) { ready <- a }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.done <- s.Run(ctx) }()
	select {
	case h.addrs = <-ready:
	case err := <-h.done:
		t.Fatalf("Run ended before it was ready: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("not ready after 10s")
	}
	t.Cleanup(func() { h.stop() })
	return h
}

func (h *harness) stop() error {
	if h.cancel == nil {
		return nil
	}
	h.cancel()
	h.cancel = nil
	select {
	case err := <-h.done:
		return err
	case <-time.After(30 * time.Second):
		h.t.Fatal("Run did not return after shutdown")
		return nil
	}
}

func (h *harness) write(name, content string) {
	h.t.Helper()
	// Write a temporary file and rename it, as editors and ConfigMaps do,
	// so the watcher never reads half a file.
	tmp := filepath.Join(h.dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		h.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(h.dir, name)); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) url(setting, path string) string {
	return "http://" + h.addrs[setting].String() + path
}

func (h *harness) token(sub string) string {
	now := time.Now().Unix()
	tok, err := h.key.Sign(map[string]any{"iss": issuer, "sub": sub, "iat": now, "exp": now + 600}, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	return tok
}

func (h *harness) get(url, tok string, header ...string) (*http.Response, string) {
	h.t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(body)
}

func TestServeEndToEnd(t *testing.T) {
	h := start(t, nil)
	if resp, _ := h.get(h.url("admin-listen", "/healthz"), ""); resp.StatusCode != 200 {
		t.Errorf("/healthz = %d", resp.StatusCode)
	}
	// Inline keys need no fetch, so the server is ready at once.
	waitFor(t, func() bool { resp, _ := h.get(h.url("admin-listen", "/readyz"), ""); return resp.StatusCode == 200 })

	resp, body := h.get(h.url("listen", "/api/orders"), h.token("alice"), "X-User", "mallory")
	if resp.StatusCode != 200 || body != "upstream /api/orders" || resp.Header.Get("X-Seen-User") != "alice" {
		t.Errorf("allowed: %d %q, upstream saw user %q; want 200, the upstream body and the token's sub", resp.StatusCode, body, resp.Header.Get("X-Seen-User"))
	}
	if resp.Header.Get("X-Request-Id") == "" {
		t.Error("no x-request-id on the response")
	}
	before := h.upstream.Load()
	if resp, _ := h.get(h.url("listen", "/api/orders"), ""); resp.StatusCode != 403 {
		t.Errorf("anonymous = %d, want 403", resp.StatusCode)
	}
	if resp, _ := h.get(h.url("listen", "/api/orders"), "garbage"); resp.StatusCode != 401 || resp.Header.Get("Www-Authenticate") == "" {
		t.Errorf("bad token = %d with WWW-Authenticate %q, want 401 with one", resp.StatusCode, resp.Header.Get("Www-Authenticate"))
	}
	if h.upstream.Load() != before {
		t.Error("a denied request reached the upstream")
	}
	// The same policy through forward-auth.
	if resp, _ := h.get(h.url("authz-listen", "/nginx"), h.token("bob"), "X-Original-URI", "/api/x", "X-Original-Method", "GET", "X-Real-IP", "203.0.113.9"); resp.StatusCode != 200 || resp.Header.Get("X-User") != "bob" {
		t.Errorf("/nginx allowed = %d, x-user %q", resp.StatusCode, resp.Header.Get("X-User"))
	}
	if resp, _ := h.get(h.url("authz-listen", "/nginx"), "", "X-Original-URI", "/api/x", "X-Original-Method", "GET", "X-Real-IP", "203.0.113.9"); resp.StatusCode != 403 {
		t.Errorf("/nginx anonymous = %d, want 403", resp.StatusCode)
	}
	_, metrics := h.get(h.url("admin-listen", "/metrics"), "")
	for _, want := range []string{"idgate_decisions_total{", `result="allow"`, "idgate_decision_duration_seconds_bucket", "go_goroutines"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if err := h.stop(); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	// Every decision has its audit record, flushed at shutdown.
	f, err := os.Open(filepath.Join(h.dir, "audit.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	for sc := bufio.NewScanner(f); sc.Scan(); n++ {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("audit line %d: %v", n, err)
		}
	}
	if n != 5 {
		t.Errorf("audit records = %d, want 5 (one per decision)", n)
	}
}

// A change to the policy files is applied; a broken change is rejected
// and the last good set keeps serving.
func TestServeReloadsPolicies(t *testing.T) {
	h := start(t, nil)
	tok := h.token("alice")
	if resp, _ := h.get(h.url("listen", "/other"), tok); resp.StatusCode != 403 {
		t.Fatalf("/other before reload = %d, want 403", resp.StatusCode)
	}
	h.write("policies.yaml", policies(h.key, `["/api/*", "/other"]`))
	waitFor(t, func() bool { resp, _ := h.get(h.url("listen", "/other"), tok); return resp.StatusCode == 200 })

	h.write("policies.yaml", "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: broken}\nspec: {action: MAYBE}\n")
	time.Sleep(200 * time.Millisecond) // ten polls
	if resp, _ := h.get(h.url("listen", "/other"), tok); resp.StatusCode != 200 {
		t.Errorf("after a broken reload /other = %d, want the last good set's 200", resp.StatusCode)
	}
	_, metrics := h.get(h.url("admin-listen", "/metrics"), "")
	if !strings.Contains(metrics, `idgate_policy_reloads_total{result="failure"} 1`) {
		t.Errorf("the rejected reload is not counted:\n%s", grep(metrics, "idgate_policy_reloads_total"))
	}

	// A policy path that disappears is one failure, not one per poll.
	if err := os.Remove(filepath.Join(h.dir, "policies.yaml")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // ten polls
	if resp, _ := h.get(h.url("listen", "/other"), tok); resp.StatusCode != 200 {
		t.Errorf("after the policy file vanished /other = %d, want the last good set's 200", resp.StatusCode)
	}
	_, metrics = h.get(h.url("admin-listen", "/metrics"), "")
	if !strings.Contains(metrics, `idgate_policy_reloads_total{result="failure"} 2`) {
		t.Errorf("a vanished policy path is not counted once:\n%s", grep(metrics, "idgate_policy_reloads_total"))
	}
}

func TestStartErrors(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	dir := t.TempDir()
	good := filepath.Join(dir, "ok.yaml")
	os.WriteFile(good, []byte("apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: a}\nspec: {}\n"), 0o644)
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: a}\nspec:\n  rules:\n  - from:\n    - source: {principal: [x]}\n"), 0o644)
	tests := []struct {
		name    string
		mutate  func(*config.Config)
		setting string
		want    string
	}{
		{"taken address", func(c *config.Config) { c.AuthzListen = taken.Addr().String() }, "authz-listen", "address already in use"},
		{"invalid policy", func(c *config.Config) { c.Policies = []string{bad} }, "policies", "bad.yaml:7: spec.rules[0].from[0].source.principal"},
		{"missing policy path", func(c *config.Config) { c.Policies = []string{filepath.Join(dir, "nope")} }, "policies", "nope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := config.Defaults()
			cfg.Policies = []string{good}
			cfg.AdminListen = "127.0.0.1:0"
			cfg.AuthzListen = "127.0.0.1:0"
			cfg.Audit = filepath.Join(dir, "audit.jsonl")
			tt.mutate(&cfg)
			_, err := New(cfg, Options{Logger: quiet})
			var se *StartError
			if !errors.As(err, &se) || se.Setting != tt.setting || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New = %v; want a StartError for --%s containing %q", err, tt.setting, tt.want)
			}
		})
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func grep(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// The configuration file is watched: a new policies list and log level
// apply at once, a setting that needs a restart is logged as such, and an
// invalid file changes nothing.
func TestServeReloadsConfig(t *testing.T) {
	key, err := mint.NewKey("")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a.yaml"), []byte(policies(key, `["/a"]`)), 0o644)
	os.WriteFile(filepath.Join(dir, "b.yaml"), []byte(policies(key, `["/b"]`)), 0o644)
	cfgFile := filepath.Join(dir, "idgate.yaml")
	write := func(body string) {
		tmp := cfgFile + ".tmp"
		os.WriteFile(tmp, []byte(body), 0o644)
		os.Rename(tmp, cfgFile)
	}
	base := "authz-listen: 127.0.0.1:0\nadmin-listen: 127.0.0.1:0\ntrusted-proxies: 1\naudit: audit.jsonl\n"
	write(base + "policies: [a.yaml]\nlog-level: info\n")
	cfg, err := config.Load(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	level := new(slog.LevelVar)
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: level}))
	ready := make(chan map[string]net.Addr, 1)
	s, err := New(cfg, Options{Logger: logger, LogLevel: level, ConfigFile: cfgFile, PollInterval: 20 * time.Millisecond,
		Ready: func(a map[string]net.Addr) { ready <- a }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); <-done }()
	addrs := <-ready
	now := time.Now().Unix()
	tok, _ := key.Sign(map[string]any{"iss": issuer, "sub": "alice", "iat": now, "exp": now + 600}, nil)
	check := func(path string) int {
		req, _ := http.NewRequest("GET", "http://"+addrs["authz-listen"].String()+"/forward-auth", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("X-Forwarded-Method", "GET")
		req.Header.Set("X-Forwarded-Proto", "https")
		req.Header.Set("X-Forwarded-Host", "example.com")
		req.Header.Set("X-Forwarded-Uri", path)
		req.Header.Set("X-Forwarded-For", "203.0.113.9")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if check("/a") != 200 || check("/b") != 403 {
		t.Fatalf("before reload: /a %d, /b %d; want 200, 403", check("/a"), check("/b"))
	}
	write(base + "policies: [b.yaml]\nlog-level: debug\nlisten: 127.0.0.1:0\nupstream: http://127.0.0.1:1\n")
	waitFor(t, func() bool { return check("/b") == 200 })
	if check("/a") != 403 {
		t.Error("/a still allowed after the policies list changed")
	}
	if level.Level() != slog.LevelDebug {
		t.Errorf("log level = %v, want debug after reload", level.Level())
	}
	waitFor(t, func() bool {
		return strings.Contains(logs.String(), "restart") && strings.Contains(logs.String(), "listen")
	})

	write("policies: [a.yaml]\nlog-level: shouting\n")
	time.Sleep(200 * time.Millisecond)
	if check("/b") != 200 || !strings.Contains(logs.String(), "configuration reload rejected") {
		t.Errorf("an invalid config file changed the running configuration or was not logged:\n%s", logs.String())
	}
	resp, err := http.Get("http://" + addrs["admin-listen"].String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`idgate_config_reloads_total{result="success"} 1`, `idgate_config_reloads_total{result="failure"} 1`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s:\n%s", want, grep(string(body), "idgate_config_reloads_total"))
		}
	}
}

// syncBuffer is a bytes.Buffer safe for the logger's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// --pprof serves Go's profiles on the admin listener; without it they are
// not there.
func TestPprof(t *testing.T) {
	for _, on := range []bool{false, true} {
		h := start(t, func(c *config.Config) { c.Pprof = on })
		want := http.StatusNotFound
		if on {
			want = http.StatusOK
		}
		for _, path := range []string{"/debug/pprof/", "/debug/pprof/heap?debug=1", "/debug/pprof/cmdline"} {
			if resp, _ := h.get(h.url("admin-listen", path), ""); resp.StatusCode != want {
				t.Errorf("pprof %v: %s = %d, want %d", on, path, resp.StatusCode, want)
			}
		}
		if err := h.stop(); err != nil {
			t.Fatal(err)
		}
	}
}

// A key set the policies stop using stops holding /readyz back: a rule
// whose JWKS cannot be fetched makes idgate not ready, and removing it
// makes idgate ready again. A rejected policy set that names it changes
// nothing.
func TestReadyAfterKeySetRemoved(t *testing.T) {
	h := start(t, nil)
	ready := func() bool { resp, _ := h.get(h.url("admin-listen", "/readyz"), ""); return resp.StatusCode == 200 }
	waitFor(t, ready)
	unreachable := `
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: other, namespace: foo}
spec:
  jwtRules:
  - issuer: https://other.example
    jwksUri: http://127.0.0.1:1/keys
`
	h.write("policies.yaml", policies(h.key, `["/api/*"]`)+unreachable)
	waitFor(t, func() bool { return !ready() })
	resp, body := h.get(h.url("admin-listen", "/readyz"), "")
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "127.0.0.1:1/keys") {
		t.Fatalf("/readyz with an unreachable key set: %d %q", resp.StatusCode, body)
	}
	h.write("policies.yaml", policies(h.key, `["/api/*"]`))
	waitFor(t, ready)

	// A set that does not compile (two CUSTOM providers) and names the
	// unreachable JWKS: rejected, and idgate stays ready.
	h.write("policies.yaml", policies(h.key, `["/api/*"]`)+unreachable+`
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: c1, namespace: foo}
spec:
  action: CUSTOM
  provider: {name: one}
  rules: [{to: [{operation: {paths: ["/x"]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: c2, namespace: foo}
spec:
  action: CUSTOM
  provider: {name: two}
  rules: [{to: [{operation: {paths: ["/y"]}}]}]
`)
	time.Sleep(200 * time.Millisecond) // ten polls
	if !ready() {
		_, body := h.get(h.url("admin-listen", "/readyz"), "")
		t.Fatalf("a rejected policy set made idgate not ready: %s", body)
	}
}
