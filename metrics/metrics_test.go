package metrics

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/idgate/idgate/audit"
	"github.com/idgate/idgate/engine"
	"github.com/idgate/idgate/keyset"
	"github.com/idgate/idgate/mint"
	"github.com/idgate/idgate/policy"
	"github.com/idgate/idgate/request"
)

const policies = `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: public, namespace: shop}
spec:
  rules:
  - to:
    - operation: {paths: ["/public/*"]}
`

// scrape fetches /metrics from a real promhttp handler over HTTP and
// parses it as Prometheus does.
func scrape(t *testing.T, reg *prometheus.Registry) map[string]*dto.MetricFamily {
	t.Helper()
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.HTTPErrorOnError}))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET /metrics = %d\n%s", resp.StatusCode, body)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

// value returns the value of the sample of family name with exactly the
// labels given, and whether there is one.
func value(fams map[string]*dto.MetricFamily, name string, labels map[string]string) (float64, bool) {
	f, ok := fams[name]
	if !ok {
		return 0, false
	}
	for _, m := range f.Metric {
		if len(m.Label) != len(labels) {
			continue
		}
		match := true
		for _, l := range m.Label {
			if labels[l.GetName()] != l.GetValue() {
				match = false
			}
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

// Decisions made through the engine, the audit writer's counts, key
// fetches and reloads all reach /metrics with the documented names and
// the exact counts.
func TestScrape(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg)
	loaded := time.Date(2025, 3, 14, 9, 0, 0, 0, time.UTC)
	m.now = func() time.Time { return loaded }

	quiet := slog.New(slog.DiscardHandler)
	w := audit.NewWriter(io.Discard, audit.Options{Logger: quiet})
	m.ObserveAudit(w.Stats)
	docs, err := policy.Parse("p.yaml", []byte(policies))
	if err != nil {
		t.Fatal(err)
	}
	eng, err := engine.New(docs, engine.Options{Audit: w, Observer: m})
	if err != nil {
		t.Fatal(err)
	}
	m.Reloaded(errors.New("p.yaml:3: bad field")) // a reload that failed to load
	for _, p := range []string{"/public/a", "/public/b", "/public/c", "/private", "/private"} {
		eng.Decide(context.Background(), &request.Attributes{Method: "GET", Path: p, Frontend: "proxy"})
	}
	eng.Explain(context.Background(), &request.Attributes{Method: "GET", Path: "/x", Frontend: "nginx"})
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w.Record(context.Background(), audit.Record{}) // after Close: dropped

	// Key sets: one read from a file, one whose file is missing.
	key, err := mint.NewKey("")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	good := filepath.Join(dir, "jwks.json")
	if err := os.WriteFile(good, key.JWKS(), 0o600); err != nil {
		t.Fatal(err)
	}
	keys := keyset.NewRegistry()
	defer keys.Close()
	for _, f := range []string{good, filepath.Join(dir, "missing.json")} {
		set, err := keys.Get(keyset.Config{File: f, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		set.Keys(context.Background())
	}
	m.ObserveKeys(keys.Status)
	var fetched time.Time
	for _, st := range keys.Status() {
		if st.Source == good {
			fetched = st.LastSuccess
		}
	}
	m.now = func() time.Time { return fetched.Add(90 * time.Second) }

	fams := scrape(t, reg)
	var names []string
	for n := range fams {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range []string{
		"idgate_decisions_total", "idgate_decision_duration_seconds", "idgate_audit_records_total",
		"idgate_audit_dropped_total", "idgate_key_fetches_total", "idgate_key_age_seconds",
		"idgate_policy_reloads_total", "idgate_policy_last_reload_success_timestamp_seconds",
	} {
		if _, ok := fams[n]; !ok {
			t.Errorf("no %s; scraped %s", n, strings.Join(names, ", "))
		}
	}

	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"idgate_decisions_total", map[string]string{"result": "allow", "reason": "allowed_by_policy", "policy": "shop/public", "frontend": "proxy"}, 3},
		{"idgate_decisions_total", map[string]string{"result": "deny", "reason": "no_allow_match", "policy": "shop/public", "frontend": "proxy"}, 2},
		{"idgate_decisions_total", map[string]string{"result": "deny", "reason": "no_allow_match", "policy": "shop/public", "frontend": "nginx"}, 1},
		{"idgate_decision_duration_seconds", map[string]string{"frontend": "proxy"}, 5},
		{"idgate_audit_records_total", map[string]string{}, 6},
		{"idgate_audit_dropped_total", map[string]string{"cause": "closed"}, 1},
		{"idgate_audit_dropped_total", map[string]string{"cause": "queue_full"}, 0},
		{"idgate_key_fetches_total", map[string]string{"issuer": good, "result": "success"}, 1},
		{"idgate_key_fetches_total", map[string]string{"issuer": good, "result": "failure"}, 0},
		{"idgate_key_fetches_total", map[string]string{"issuer": filepath.Join(dir, "missing.json"), "result": "failure"}, 1},
		{"idgate_key_age_seconds", map[string]string{"issuer": good}, 90},
		{"idgate_policy_reloads_total", map[string]string{"result": "success"}, 1},
		{"idgate_policy_reloads_total", map[string]string{"result": "failure"}, 1},
		{"idgate_policy_last_reload_success_timestamp_seconds", map[string]string{}, float64(loaded.Unix())},
	} {
		got, ok := value(fams, c.name, c.labels)
		if !ok || got != c.want {
			t.Errorf("%s%v = %v (present %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	if _, ok := value(fams, "idgate_key_age_seconds", map[string]string{"issuer": filepath.Join(dir, "missing.json")}); ok {
		t.Error("key age reported for a key set never fetched")
	}
}

// Several key sets with one source (inline JWK Sets) make one series
// each, not a duplicate that would break the scrape.
func TestKeySetsWithOneSource(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg)
	now := time.Date(2025, 3, 14, 9, 0, 0, 0, time.UTC)
	m.now = func() time.Time { return now }
	m.ObserveKeys(func() []keyset.Status {
		return []keyset.Status{
			{Source: "inline JWKS", Ready: true, Keys: 1},
			{Source: "inline JWKS", Ready: true, Keys: 2},
			{Source: "https://idp.example/keys", Fetches: 3, Failures: 1, LastSuccess: now.Add(-time.Hour)},
			{Source: "https://idp.example/keys", Fetches: 2, LastSuccess: now.Add(-time.Minute)},
		}
	})
	fams := scrape(t, reg)
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"idgate_key_fetches_total", map[string]string{"issuer": "inline JWKS", "result": "success"}, 0},
		{"idgate_key_fetches_total", map[string]string{"issuer": "https://idp.example/keys", "result": "success"}, 4},
		{"idgate_key_fetches_total", map[string]string{"issuer": "https://idp.example/keys", "result": "failure"}, 1},
		{"idgate_key_age_seconds", map[string]string{"issuer": "https://idp.example/keys"}, 3600},
	} {
		if got, ok := value(fams, c.name, c.labels); !ok || got != c.want {
			t.Errorf("%s%v = %v (present %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
}

// A nil Registerer registers nothing; the metrics still work.
func TestNilRegisterer(t *testing.T) {
	m := New(nil)
	m.Decided(nil, engine.Decision{Allowed: true, Reason: "allowed_no_policies"}, time.Millisecond)
	m.Reloaded(nil)
}

// docs/metrics.md documents every metric.
func TestDocsNameEveryMetric(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "metrics.md"))
	if err != nil {
		t.Fatal(err)
	}
	var c capture
	New(&c)
	descs := make(chan *prometheus.Desc, 64)
	for _, col := range c.collectors {
		col.Describe(descs)
	}
	close(descs)
	var names []string
	for d := range descs {
		s := d.String()
		_, rest, _ := strings.Cut(s, `fqName: "`)
		name, _, _ := strings.Cut(rest, `"`)
		names = append(names, name)
	}
	for _, n := range names {
		if !strings.Contains(string(doc), "`"+n) {
			t.Errorf("docs/metrics.md does not document %s", n)
		}
	}
	if len(names) < 8 {
		t.Errorf("found only %d metrics: %v", len(names), names)
	}
}

// capture is a Registerer that keeps what is registered with it.
type capture struct{ collectors []prometheus.Collector }

func (c *capture) Register(col prometheus.Collector) error {
	c.collectors = append(c.collectors, col)
	return nil
}

func (c *capture) MustRegister(cols ...prometheus.Collector) {
	c.collectors = append(c.collectors, cols...)
}

func (c *capture) Unregister(prometheus.Collector) bool { return false }

// BenchmarkDecided is what counting a decision adds to it.
func BenchmarkDecided(b *testing.B) {
	m := New(prometheus.NewRegistry())
	a := &request.Attributes{Frontend: "proxy"}
	d := engine.Decision{Allowed: true, Status: 200, Reason: "allowed_by_policy", Policy: "shop/public", Rule: 0}
	b.ReportAllocs()
	for b.Loop() {
		m.Decided(a, d, 40*time.Microsecond)
	}
}
