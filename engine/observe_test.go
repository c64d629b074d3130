package engine

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	securityv1beta1 "istio.io/api/security/v1beta1"

	"github.com/idgate/idgate/audit"
	"github.com/idgate/idgate/mint"
	"github.com/idgate/idgate/policy"
	"github.com/idgate/idgate/request"
	"github.com/idgate/idgate/token"
)

// records is a Sink that keeps the records it is given.
type records struct {
	mu   sync.Mutex
	recs []audit.Record
}

func (s *records) Record(_ context.Context, r audit.Record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recs = append(s.recs, r)
}

func (s *records) take() []audit.Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.recs
	s.recs = nil
	return r
}

// newObservedFixture builds an engine over yaml with opts, verifying tokens with a
// fresh key.
func newObservedFixture(t testing.TB, yaml string, opts Options) *fixture {
	t.Helper()
	key, err := mint.NewKey("")
	if err != nil {
		t.Fatal(err)
	}
	docs, err := policy.Parse("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	keys := token.StaticKeys{key.PublicKey()}
	opts.Keys = func(*securityv1beta1.JWTRule) (token.KeySource, error) { return keys, nil }
	eng, err := New(docs, opts)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{key: key, eng: eng}
}

// at sets the attributes front ends fill in besides the request itself.
func at(a *request.Attributes, id, frontend string) *request.Attributes {
	a.RequestID, a.Frontend = id, frontend
	a.Host = "orders.example.com:8443"
	a.RemoteIP = netip.MustParseAddr("203.0.113.9")
	return a
}

// Every decision, by Decide or Explain, gives one record that carries
// the request's facts, the decision and the verified identity, and
// never the token.
func TestRecordOfEveryDecision(t *testing.T) {
	sink := &records{}
	f := newObservedFixture(t, basePolicies, Options{Audit: sink})
	v2 := f.token(t, map[string]any{"oid": "oid-1", "tid": "tid-1", "azp": "app-v2", "appid": "ignored"})
	v1 := f.token(t, map[string]any{"oid": "oid-2", "tid": "tid-2", "appid": "app-v1"})
	expired := f.token(t, map[string]any{"exp": 1, "oid": "oid-3"})
	tests := []struct {
		name string
		a    *request.Attributes
		tok  string
		want audit.Record // the fields that depend on the case
	}{
		{"v2 token", req("/api", v2), v2, audit.Record{
			Decision: audit.Allow, Status: 200, Reason: "allowed_by_policy", Policy: "foo/require-jwt", Rule: 0,
			Principal: issuer + "/alice", OID: "oid-1", TID: "tid-1", AppID: "app-v2", TokenFingerprint: audit.Fingerprint(v2),
		}},
		{"v1 token: appid", req("/admin", v1), v1, audit.Record{
			Decision: audit.Deny, Status: 403, Reason: "denied_by_policy", Policy: "foo/deny-admin", Rule: 0,
			Principal: issuer + "/alice", OID: "oid-2", TID: "tid-2", AppID: "app-v1", TokenFingerprint: audit.Fingerprint(v1),
		}},
		{"anonymous", req("/api", ""), "", audit.Record{
			Decision: audit.Deny, Status: 403, Reason: "no_allow_match", Policy: "foo/require-jwt", Rule: -1,
		}},
		{"rejected token: nothing from it is recorded", req("/api", expired), expired, audit.Record{
			Decision: audit.Deny, Status: 401, Reason: "expired", Policy: "foo/jwt", Rule: 0,
		}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, explain := range []bool{false, true} {
				id := fmt.Sprintf("req-%d-%v", i, explain)
				a := at(tt.a, id, "proxy")
				var d Decision
				if explain {
					d = f.eng.Explain(context.Background(), a)
				} else {
					d = f.eng.Decide(context.Background(), a)
				}
				recs := sink.take()
				if len(recs) != 1 {
					t.Fatalf("explain=%v: %d records, want 1", explain, len(recs))
				}
				r := recs[0]
				if r.Latency <= 0 || r.Time.IsZero() || r.Time.Location().String() != "UTC" {
					t.Errorf("latency %v, time %v; want both set, time in UTC", r.Latency, r.Time)
				}
				want := tt.want
				want.Schema, want.Time, want.Latency = audit.Schema, r.Time, r.Latency
				want.RequestID, want.Frontend, want.Enforced = id, "proxy", true
				want.Method, want.Host, want.Path = "GET", "orders.example.com:8443", tt.a.Path
				want.SourceIP, want.RemoteIP = netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("203.0.113.9")
				want.Detail = d.Detail
				if r != want {
					t.Errorf("explain=%v: record\n%+v\nwant\n%+v", explain, r, want)
				}
				line, err := json.Marshal(r)
				if err != nil {
					t.Fatal(err)
				}
				if tt.tok != "" {
					sig := tt.tok[strings.LastIndexByte(tt.tok, '.')+1:]
					payload := strings.Split(tt.tok, ".")[1]
					if strings.Contains(string(line), sig) || strings.Contains(string(line), payload) {
						t.Errorf("record holds token material: %s", line)
					}
				}
			}
		})
	}
}

// Offline use (test, explain) builds the engine without a sink: nothing
// is recorded, and decisions are the same.
func TestNoSinkNoRecords(t *testing.T) {
	sink := &records{}
	with := newObservedFixture(t, basePolicies, Options{Audit: sink})
	without := newObservedFixture(t, basePolicies, Options{})
	a := req("/api", "")
	if d1, d2 := with.eng.Decide(context.Background(), a), without.eng.Decide(context.Background(), a); d1.Status != d2.Status || d1.Reason != d2.Reason {
		t.Errorf("decisions differ with and without a sink: %d %s, %d %s", d1.Status, d1.Reason, d2.Status, d2.Reason)
	}
	if n := len(sink.take()); n != 1 {
		t.Errorf("%d records from the engine with a sink, want 1", n)
	}
}

// In dry-run mode the policies decide as usual and their decision is
// recorded, but nothing is blocked.
func TestDryRunMode(t *testing.T) {
	for _, dryRun := range []bool{false, true} {
		sink := &records{}
		f := newObservedFixture(t, basePolicies, Options{Audit: sink, DryRun: dryRun})
		for _, tt := range []struct {
			a       *request.Attributes
			status  int
			allowed bool
		}{
			{req("/api", f.token(t, nil)), 200, true},
			{req("/api", ""), 403, false},
			{req("/api", "garbage"), 401, false},
		} {
			d := f.eng.Decide(context.Background(), tt.a)
			blocks := !tt.allowed && !dryRun
			if d.Status != tt.status || d.Allowed != tt.allowed || d.DryRun != dryRun || d.Blocks() != blocks {
				t.Errorf("dry-run %v: decision %d allowed=%v dryRun=%v blocks=%v; want %d allowed=%v dryRun=%v blocks=%v",
					dryRun, d.Status, d.Allowed, d.DryRun, d.Blocks(), tt.status, tt.allowed, dryRun, blocks)
			}
			r := sink.take()[0]
			if r.Enforced == dryRun || r.Status != tt.status || (r.Decision == audit.Allow) != tt.allowed {
				t.Errorf("dry-run %v: record enforced=%v %d %s", dryRun, r.Enforced, r.Status, r.Decision)
			}
		}
	}
}

// Records say what dry-run policies would have decided, and which AUDIT
// policy matched; neither changes the decision.
func TestRecordDryRunPoliciesAndAudit(t *testing.T) {
	const more = basePolicies + `
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: deny-reports
  namespace: foo
  annotations: {istio.io/dry-run: "true"}
spec:
  action: DENY
  rules:
  - to:
    - operation: {paths: ["/other"]}
  - to:
    - operation: {paths: ["/reports/*"]}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: ext-dry
  namespace: foo
  annotations: {istio.io/dry-run: "true"}
spec:
  action: CUSTOM
  provider: {name: opa}
  rules:
  - to:
    - operation: {paths: ["/ext/*"]}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: audit-writes, namespace: foo}
spec:
  action: AUDIT
  rules:
  - to:
    - operation: {methods: ["POST"]}
`
	sink := &records{}
	f := newObservedFixture(t, more, Options{Audit: sink})
	tok := f.token(t, nil)
	post := req("/reports/q1", tok)
	post.Method = "POST"
	tests := []struct {
		name   string
		a      *request.Attributes
		dryRun audit.Outcome
		audit  audit.Match
	}{
		{"dry-run DENY would deny", req("/reports/q1", tok),
			audit.Outcome{Decision: audit.Deny, Status: 403, Reason: "denied_by_policy", Policy: "foo/deny-reports", Rule: 1}, audit.Match{}},
		{"dry-run policies agree", req("/api", tok),
			audit.Outcome{Decision: audit.Allow, Status: 200, Reason: "allowed_by_policy", Policy: "foo/require-jwt", Rule: 0}, audit.Match{}},
		{"dry-run CUSTOM would deny", req("/ext/x", tok),
			audit.Outcome{Decision: audit.Deny, Status: 403, Reason: CustomNotConfigured, Policy: "foo/ext-dry", Rule: 0}, audit.Match{}},
		{"AUDIT match", post,
			audit.Outcome{Decision: audit.Deny, Status: 403, Reason: "denied_by_policy", Policy: "foo/deny-reports", Rule: 1},
			audit.Match{Policy: "foo/audit-writes", Rule: 0}},
		{"authentication failed: authorization did not run", req("/reports/q1", "garbage"), audit.Outcome{}, audit.Match{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := f.eng.Decide(context.Background(), tt.a)
			if tt.a.Header.Get("Authorization") != "Bearer garbage" && !d.Allowed {
				t.Errorf("decision %d %s: dry-run or AUDIT policies changed it", d.Status, d.Reason)
			}
			r := sink.take()[0]
			if r.DryRun != tt.dryRun || r.Audit != tt.audit {
				t.Errorf("record dry_run %+v audit %+v; want %+v, %+v", r.DryRun, r.Audit, tt.dryRun, tt.audit)
			}
		})
	}

	// Without dry-run policies there is nothing to say.
	plain := &records{}
	g := newObservedFixture(t, basePolicies, Options{Audit: plain})
	g.eng.Decide(context.Background(), req("/api", g.token(t, nil)))
	if r := plain.take()[0]; r.DryRun != (audit.Outcome{}) {
		t.Errorf("dry_run %+v without dry-run policies", r.DryRun)
	}
}

// Under concurrent load every decision gives exactly one line in the
// audit file: N goroutines × M decisions = N×M valid JSON lines with
// distinct request ids.
func TestConcurrentDecisionsAllRecorded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	w, err := audit.Open(path, audit.Options{QueueSize: 64})
	if err != nil {
		t.Fatal(err)
	}
	f := newObservedFixture(t, basePolicies, Options{Audit: w})
	tok := f.token(t, nil)
	const n, m = 8, 400
	var wg sync.WaitGroup
	for g := range n {
		wg.Go(func() {
			for i := range m {
				t := tok
				if i%2 == 1 {
					t = ""
				}
				a := req("/api", t)
				a.RequestID = request.RequestID(fmt.Sprintf("g%d-r%d", g, i))
				a.Frontend = "forward-auth"
				f.eng.Decide(context.Background(), a)
			}
		})
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	file, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	seen := map[string]bool{}
	allowed := 0
	sc := bufio.NewScanner(file)
	for sc.Scan() {
		var r audit.Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("line %d: %v\n%s", len(seen)+1, err, sc.Bytes())
		}
		if seen[r.RequestID] {
			t.Fatalf("request id %s recorded twice", r.RequestID)
		}
		seen[r.RequestID] = true
		if r.Decision == audit.Allow {
			allowed++
		}
	}
	if len(seen) != n*m || allowed != n*m/2 {
		t.Errorf("%d records (%d allowed), want %d (%d allowed)", len(seen), allowed, n*m, n*m/2)
	}
	if st := w.Stats(); st.Received != n*m || st.Written != n*m || st.Dropped.Total() != 0 {
		t.Errorf("writer Stats %+v, want %d received and written", st, n*m)
	}
}

// observations is an Observer that counts what it is told.
type observations struct {
	mu        sync.Mutex
	decided   map[string]int // by frontend/status/reason
	reloads   []error
	positives int // decisions with a positive latency
}

func (o *observations) Decided(a *request.Attributes, d Decision, took time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.decided[fmt.Sprintf("%s/%d/%s", a.Frontend, d.Status, d.Reason)]++
	if took > 0 {
		o.positives++
	}
}

func (o *observations) Reloaded(err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.reloads = append(o.reloads, err)
}

// The Observer hears of every decision once, and of every reload,
// failed or not, New's first load included.
func TestObserver(t *testing.T) {
	o := &observations{decided: map[string]int{}}
	f := newObservedFixture(t, basePolicies, Options{Observer: o})
	a := at(req("/api", ""), "x", "nginx")
	f.eng.Decide(context.Background(), a)
	f.eng.Explain(context.Background(), a)
	f.eng.Decide(context.Background(), at(req("/api", f.token(t, nil)), "y", "nginx"))
	want := map[string]int{"nginx/403/no_allow_match": 2, "nginx/200/allowed_by_policy": 1}
	if fmt.Sprint(o.decided) != fmt.Sprint(want) || o.positives != 3 {
		t.Errorf("observed %v (%d with a latency), want %v (3)", o.decided, o.positives, want)
	}
	f.eng.opts.Keys = func(*securityv1beta1.JWTRule) (token.KeySource, error) { return nil, errNoKeys }
	if err := f.eng.Reload(f.eng.Documents()); err == nil {
		t.Fatal("Reload with failing keys succeeded")
	}
	if len(o.reloads) != 2 || o.reloads[0] != nil || !errors.Is(o.reloads[1], errNoKeys) {
		t.Errorf("reloads observed: %v; want nil (New), then the failure", o.reloads)
	}
}

// BenchmarkDecideAudit shows what the audit trail adds to a decision:
// Decide without a sink, and with a Writer (to io.Discard).
func BenchmarkDecideAudit(b *testing.B) {
	for _, tc := range []struct {
		name  string
		token bool
	}{{"anonymous", false}, {"token", true}} {
		for _, sink := range []string{"nil", "writer"} {
			b.Run(tc.name+"/sink="+sink, func(b *testing.B) {
				var opts Options
				var w *audit.Writer
				if sink == "writer" {
					w = audit.NewWriter(io.Discard, audit.Options{})
					opts.Audit = w
				}
				f := newObservedFixture(b, basePolicies, opts)
				tok := ""
				if tc.token {
					now := time.Now().Unix()
					var err error
					tok, err = f.key.Sign(map[string]any{"iss": issuer, "sub": "alice", "aud": "api://orders",
						"oid": "0b2b6f1e-7d7c-4d7e-9a57-3c1a5d1c2e4f", "tid": "6f1c2a3b-4d5e-4f60-8a71-9b2c3d4e5f60",
						"azp": "3fa2b1c4-6e5d-4c3b-8a9f-0e1d2c3b4a59", "iat": now, "exp": now + 3600}, nil)
					if err != nil {
						b.Fatal(err)
					}
				}
				a := at(req("/api", tok), "9f86d081884c7d659a2feaa0c55ad015", "proxy")
				ctx := context.Background()
				b.ReportAllocs()
				for b.Loop() {
					f.eng.Decide(ctx, a)
				}
				b.StopTimer()
				if w != nil {
					w.Close()
				}
			})
		}
	}
}
