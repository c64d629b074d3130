package engine

import (
	"context"
	"runtime"
	"testing"

	"github.com/idgate/idgate/authn"
)

// maxBytesPerToken is the memory target of the verified-token cache:
// 100,000 Entra ID tokens in 64 MiB.
const maxBytesPerToken = 64 << 20 / 100_000

// fillTokenCache decides one request for each of n distinct Entra-like
// tokens (the benchmark policies), so that cache holds n entries, and
// returns the heap they hold.
func fillTokenCache(t testing.TB, n int) (heap int64, st authn.CacheStats) {
	return fillTokenCacheKeep(t, n, func() {})
}

func fillTokenCacheKeep(t testing.TB, n int, probe func()) (heap int64, st authn.CacheStats) {
	d := newDecideBenchAlg(t, "EdDSA") // signing RSA would take minutes
	tokens := make([]string, n)
	for i := range tokens {
		tokens[i] = d.token(t, i)
	}
	cache := authn.NewCache(authn.CacheConfig{MaxEntries: 2 * n, MaxBytes: 1 << 40}) // room in every shard
	e := d.engine(t, cache)
	a := benchRequest("")
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for _, raw := range tokens {
		a.Header.Set("Authorization", "Bearer "+raw)
		if dec := e.Decide(context.Background(), a); !dec.Allowed {
			t.Fatalf("denied: %s", dec.Detail)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	probe()
	runtime.KeepAlive(e)
	runtime.KeepAlive(tokens)
	return int64(after.HeapAlloc) - int64(before.HeapAlloc), cache.Stats()
}

// The cache's estimate of its memory, which bounds it, does not undercount
// the heap its entries hold (nor overcount it much), and an Entra ID token
// with 20 groups, decided by the 10 benchmark policies, takes no more than
// the target.
func TestTokenCacheMemory(t *testing.T) {
	const n = 3000
	heap, st := fillTokenCache(t, n)
	if st.Entries != n {
		t.Fatalf("%d entries of %d", st.Entries, n)
	}
	t.Logf("%d entries: heap %d B/token, estimate %d B/token", st.Entries, heap/int64(st.Entries), st.Bytes/int64(st.Entries))
	if heap > st.Bytes {
		t.Errorf("the entries hold %d bytes of heap but the cache estimates %d: its memory bound does not hold", heap, st.Bytes)
	}
	if st.Bytes > heap*3/2 {
		t.Errorf("the cache estimates %d bytes for %d of heap: its memory bound would keep far fewer tokens than fit", st.Bytes, heap)
	}
	if per := heap / int64(st.Entries); per > maxBytesPerToken {
		t.Errorf("%d bytes of heap per token, want at most %d (100k tokens in 64 MiB)", per, maxBytesPerToken)
	}
}

// BenchmarkTokenCacheMemory fills a cache with 100,000 tokens and reports
// the heap they hold. Run it once:
//
//	go test -run='^$' -bench=TokenCacheMemory -benchtime=1x ./engine
func BenchmarkTokenCacheMemory(b *testing.B) {
	for b.Loop() {
		heap, st := fillTokenCache(b, 100_000)
		b.ReportMetric(float64(heap)/(1<<20), "heap-MiB")
		b.ReportMetric(float64(heap)/float64(st.Entries), "heap-B/token")
		b.ReportMetric(float64(st.Bytes)/float64(st.Entries), "estimate-B/token")
		b.ReportMetric(float64(st.Entries), "entries")
	}
}
