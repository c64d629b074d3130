// Package metrics exports idgate's Prometheus metrics: decisions and
// their latency, the audit trail, key fetches and key age, and policy
// reloads (docs/metrics.md).
//
// A Metrics is an engine.Observer. Audit and key figures are read from
// their sources (audit.Writer.Stats, keyset.Registry.Status) when
// Prometheus scrapes, so the exported counts are exactly theirs.
//
// Label values come from a bounded set: reason codes are fixed, policy
// names come from the loaded configuration, front ends from the code, and
// key set sources from the configuration. Nothing is labelled by
// principal, path or any other value a client chooses.
package metrics

import (
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/idgate/idgate/audit"
	"github.com/idgate/idgate/authn"
	"github.com/idgate/idgate/engine"
	"github.com/idgate/idgate/keyset"
	"github.com/idgate/idgate/request"
)

// DurationBuckets are the upper bounds, in seconds, of the decision
// latency histogram: from 10 µs (a decision on cached keys) to 5 s (one
// that waited for a key fetch).
var DurationBuckets = []float64{
	0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005,
	0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
}

// Metrics holds idgate's collectors. It is safe for concurrent use.
type Metrics struct {
	decisions  *prometheus.CounterVec
	duration   *prometheus.HistogramVec
	reloads    *prometheus.CounterVec
	configs    *prometheus.CounterVec
	lastReload prometheus.Gauge
	now        func() time.Time

	mu         sync.Mutex
	audit      func() audit.Stats
	keys       func() []keyset.Status
	tokenCache func() authn.CacheStats
	scrape     *scraped

	// children caches the collectors of the label values seen, so that
	// counting a decision finds them without hashing its label values
	// again. It is copied on write, under childMu: new label values are
	// rare (policy names and reason codes are bounded), lookups are not.
	children atomic.Pointer[children]
	childMu  sync.Mutex
}

// children are the decision counters and duration histograms of the
// label values seen so far.
type children struct {
	decisions map[decisionLabels]prometheus.Counter
	durations map[string]prometheus.Observer
}

// decisionLabels are the label values of idgate_decisions_total.
type decisionLabels struct{ result, reason, policy, frontend string }

var _ engine.Observer = (*Metrics)(nil)

// New returns the metrics, registered with reg. A nil reg registers
// nothing (the metrics still count). It panics if reg already holds
// metrics of the same names, as prometheus.MustRegister does.
func New(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "idgate_decisions_total",
			Help: "Decisions made, by result (allow or deny), reason code, deciding policy and front end.",
		}, []string{"result", "reason", "policy", "frontend"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "idgate_decision_duration_seconds",
			Help:    "How long decisions took (authentication and authorization), by front end.",
			Buckets: DurationBuckets,
		}, []string{"frontend"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "idgate_policy_reloads_total",
			Help: "Attempts to load a set of policies, the first included, by result (success or failure).",
		}, []string{"result"}),
		configs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "idgate_config_reloads_total",
			Help: "Attempts to apply a changed configuration file, by result (success or failure).",
		}, []string{"result"}),
		lastReload: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "idgate_policy_last_reload_success_timestamp_seconds",
			Help: "When a set of policies was last put in force, in seconds since the Unix epoch.",
		}),
		now: time.Now,
	}
	m.scrape = &scraped{m: m}
	m.children.Store(&children{
		decisions: map[decisionLabels]prometheus.Counter{},
		durations: map[string]prometheus.Observer{},
	})
	// Both results exist from the start, so that rate() and alerts on
	// failures work before the first failure.
	m.reloads.WithLabelValues(success)
	m.reloads.WithLabelValues(failure)
	m.configs.WithLabelValues(success)
	m.configs.WithLabelValues(failure)
	if reg != nil {
		reg.MustRegister(m.decisions, m.duration, m.reloads, m.configs, m.lastReload, m.scrape, cacheCollector{m})
	}
	return m
}

const (
	success = "success"
	failure = "failure"
)

// Decided counts a decision and its latency (engine.Observer).
func (m *Metrics) Decided(a *request.Attributes, d engine.Decision, took time.Duration) {
	frontend := ""
	if a != nil {
		frontend = a.Frontend
	}
	result := audit.Deny
	if d.Allowed {
		result = audit.Allow
	}
	k := decisionLabels{result, d.Reason, d.Policy, frontend}
	c := m.children.Load()
	counter, ok := c.decisions[k]
	if !ok {
		counter = m.decisionCounter(k)
	}
	counter.Inc()
	obs, ok := c.durations[frontend]
	if !ok {
		obs = m.durationObserver(frontend)
	}
	obs.Observe(took.Seconds())
}

// decisionCounter returns the decisions counter of k, and caches it.
func (m *Metrics) decisionCounter(k decisionLabels) prometheus.Counter {
	m.childMu.Lock()
	defer m.childMu.Unlock()
	old := m.children.Load()
	if c, ok := old.decisions[k]; ok {
		return c
	}
	c := m.decisions.WithLabelValues(k.result, k.reason, k.policy, k.frontend)
	next := &children{decisions: maps.Clone(old.decisions), durations: old.durations}
	next.decisions[k] = c
	m.children.Store(next)
	return c
}

// durationObserver returns the decision duration histogram of frontend,
// and caches it.
func (m *Metrics) durationObserver(frontend string) prometheus.Observer {
	m.childMu.Lock()
	defer m.childMu.Unlock()
	old := m.children.Load()
	if o, ok := old.durations[frontend]; ok {
		return o
	}
	o := m.duration.WithLabelValues(frontend)
	next := &children{decisions: old.decisions, durations: maps.Clone(old.durations)}
	next.durations[frontend] = o
	m.children.Store(next)
	return o
}

// Reloaded counts an attempt to load policies (engine.Observer). The
// engine reports its own reloads; whoever loads policy files reports a
// load that failed before the engine saw it, so that every attempt is
// counted once.
func (m *Metrics) Reloaded(err error) {
	if err != nil {
		m.reloads.WithLabelValues(failure).Inc()
		return
	}
	m.reloads.WithLabelValues(success).Inc()
	m.lastReload.Set(float64(m.now().UnixNano()) / 1e9)
}

// ConfigReloaded counts an attempt to apply a changed configuration file.
func (m *Metrics) ConfigReloaded(err error) {
	if err != nil {
		m.configs.WithLabelValues(failure).Inc()
		return
	}
	m.configs.WithLabelValues(success).Inc()
}

// ObserveAudit makes the audit metrics report stats, typically an
// audit.Writer's Stats method. Until it is called they report zero.
func (m *Metrics) ObserveAudit(stats func() audit.Stats) {
	m.mu.Lock()
	m.audit = stats
	m.mu.Unlock()
}

// ObserveKeys makes the key metrics report the key sets status returns,
// typically a keyset.Registry's Status method.
func (m *Metrics) ObserveKeys(status func() []keyset.Status) {
	m.mu.Lock()
	m.keys = status
	m.mu.Unlock()
}

// The metrics read from their sources at scrape time.
var (
	auditRecordsDesc = prometheus.NewDesc("idgate_audit_records_total",
		"Audit records written.", nil, nil)
	auditDroppedDesc = prometheus.NewDesc("idgate_audit_dropped_total",
		"Audit records not written, by cause: queue_full (overflow policy drop), canceled (overflow policy block, the request ended first), closed (after shutdown began), write_failed.",
		[]string{"cause"}, nil)
	keyFetchesDesc = prometheus.NewDesc("idgate_key_fetches_total",
		"Fetches of signing keys, by key set source (issuer for OIDC discovery, else the JWKS URI or file) and result (success or failure).",
		[]string{"issuer", "result"}, nil)
	keyAgeDesc = prometheus.NewDesc("idgate_key_age_seconds",
		"Seconds since the signing keys in use were fetched, by key set source; absent for inline keys and before the first successful fetch.",
		[]string{"issuer"}, nil)
)

// scraped collects the metrics that are read from their sources.
type scraped struct{ m *Metrics }

func (s *scraped) Describe(ch chan<- *prometheus.Desc) {
	ch <- auditRecordsDesc
	ch <- auditDroppedDesc
	ch <- keyFetchesDesc
	ch <- keyAgeDesc
}

func (s *scraped) Collect(ch chan<- prometheus.Metric) {
	s.m.mu.Lock()
	statsFn, keysFn := s.m.audit, s.m.keys
	s.m.mu.Unlock()

	var st audit.Stats
	if statsFn != nil {
		st = statsFn()
	}
	ch <- prometheus.MustNewConstMetric(auditRecordsDesc, prometheus.CounterValue, float64(st.Written))
	for _, c := range []struct {
		cause string
		n     uint64
	}{
		{"queue_full", st.Dropped.QueueFull},
		{"canceled", st.Dropped.Canceled},
		{"closed", st.Dropped.Closed},
		{"write_failed", st.Dropped.WriteFailed},
	} {
		ch <- prometheus.MustNewConstMetric(auditDroppedDesc, prometheus.CounterValue, float64(c.n), c.cause)
	}

	if keysFn == nil {
		return
	}
	// Sets with the same source (several inline JWK Sets) are summed;
	// their age is that of the oldest keys.
	type sums struct {
		fetches, failures int64
		oldest            time.Time
	}
	bySource := map[string]*sums{}
	var order []string
	for _, k := range keysFn() {
		t, ok := bySource[k.Source]
		if !ok {
			t = &sums{}
			bySource[k.Source] = t
			order = append(order, k.Source)
		}
		t.fetches += k.Fetches
		t.failures += k.Failures
		if !k.LastSuccess.IsZero() && (t.oldest.IsZero() || k.LastSuccess.Before(t.oldest)) {
			t.oldest = k.LastSuccess
		}
	}
	now := s.m.now()
	for _, src := range order {
		t := bySource[src]
		ch <- prometheus.MustNewConstMetric(keyFetchesDesc, prometheus.CounterValue, float64(t.fetches-t.failures), src, success)
		ch <- prometheus.MustNewConstMetric(keyFetchesDesc, prometheus.CounterValue, float64(t.failures), src, failure)
		if !t.oldest.IsZero() {
			ch <- prometheus.MustNewConstMetric(keyAgeDesc, prometheus.GaugeValue, now.Sub(t.oldest).Seconds(), src)
		}
	}
}
