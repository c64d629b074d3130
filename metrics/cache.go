package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/idgate/idgate/authn"
)

// ObserveTokenCache makes the token cache metrics report stats, typically
// a authn.Cache's Stats method. Until it is called (or when the cache is
// off) they are not exported.
func (m *Metrics) ObserveTokenCache(stats func() authn.CacheStats) {
	m.mu.Lock()
	m.tokenCache = stats
	m.mu.Unlock()
}

// The token cache metrics, read from the cache when Prometheus scrapes.
// The hit ratio is rate(hits) / (rate(hits) + rate(misses)).
var (
	cacheLookupsDesc = prometheus.NewDesc("idgate_token_cache_lookups_total",
		"Lookups of verified tokens in the token cache, by result: hit (answered without verifying the token again) or miss (verified in full).",
		[]string{"result"}, nil)
	cacheEvictionsDesc = prometheus.NewDesc("idgate_token_cache_evictions_total",
		"Verified tokens dropped from the token cache to stay within its size and memory bounds.", nil, nil)
	cacheEntriesDesc = prometheus.NewDesc("idgate_token_cache_entries",
		"Verified tokens in the token cache.", nil, nil)
	cacheBytesDesc = prometheus.NewDesc("idgate_token_cache_bytes",
		"Estimated memory, in bytes, of the tokens in the token cache.", nil, nil)
)

// cacheCollector exports the token cache's figures.
type cacheCollector struct{ m *Metrics }

func (c cacheCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- cacheLookupsDesc
	ch <- cacheEvictionsDesc
	ch <- cacheEntriesDesc
	ch <- cacheBytesDesc
}

func (c cacheCollector) Collect(ch chan<- prometheus.Metric) {
	c.m.mu.Lock()
	statsFn := c.m.tokenCache
	c.m.mu.Unlock()
	if statsFn == nil {
		return
	}
	st := statsFn()
	ch <- prometheus.MustNewConstMetric(cacheLookupsDesc, prometheus.CounterValue, float64(st.Hits), "hit")
	ch <- prometheus.MustNewConstMetric(cacheLookupsDesc, prometheus.CounterValue, float64(st.Misses), "miss")
	ch <- prometheus.MustNewConstMetric(cacheEvictionsDesc, prometheus.CounterValue, float64(st.Evictions))
	ch <- prometheus.MustNewConstMetric(cacheEntriesDesc, prometheus.GaugeValue, float64(st.Entries))
	ch <- prometheus.MustNewConstMetric(cacheBytesDesc, prometheus.GaugeValue, float64(st.Bytes))
}
