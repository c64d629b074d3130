package token

import (
	"context"
	"crypto/elliptic"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// swappableKeys is a KeySource whose keys a test replaces.
type swappableKeys struct {
	mu   sync.Mutex
	keys []Key
	err  error
}

func (s *swappableKeys) Keys(context.Context) ([]Key, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keys, s.err
}

func (s *swappableKeys) Refresh(ctx context.Context) ([]Key, error) { return s.Keys(ctx) }

func (s *swappableKeys) set(keys []Key, err error) {
	s.mu.Lock()
	s.keys, s.err = keys, err
	s.mu.Unlock()
}

// testClock is a clock a test moves.
type testClock struct{ sec atomic.Int64 }

func newTestClock() *testClock {
	c := &testClock{}
	c.sec.Store(testNow.Unix())
	return c
}

func (c *testClock) now() time.Time { return time.Unix(c.sec.Load(), 0) }

// cachedPair returns a verifier with cache and an identical one without,
// both on keys and clock: the uncached one says what a fresh Verify
// answers.
func cachedPair(t *testing.T, cache *Cache, keys KeySource, clock *testClock) (cached, fresh *Verifier) {
	t.Helper()
	cfg := Config{
		Issuers:   []string{"https://issuer.example"},
		Audiences: []string{"api://orders"},
		Keys:      keys,
		Now:       clock.now,
	}
	fresh, err := NewVerifier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Cache = cache
	if cached, err = NewVerifier(cfg); err != nil {
		t.Fatal(err)
	}
	return cached, fresh
}

// sameAnswer checks that the cached verifier answers raw exactly as the
// fresh one does, and returns the code.
func sameAnswer(t *testing.T, cached, fresh *Verifier, raw string) Code {
	t.Helper()
	ctx := context.Background()
	got, gotErr := cached.Verify(ctx, raw)
	want, wantErr := fresh.Verify(ctx, raw)
	if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) {
		t.Fatalf("cached Verify: %v\nfresh Verify:  %v", gotErr, wantErr)
	}
	if (got == nil) != (want == nil) || got != nil && (got.Raw != want.Raw || got.Subject != want.Subject) {
		t.Fatalf("cached Verify returned %+v, fresh %+v", got, want)
	}
	return code(gotErr)
}

func es256Token(t *testing.T, kid string, claims map[string]any) string {
	t.Helper()
	return mint(t, testP256Key(), map[string]any{"alg": "ES256", "kid": kid}, claims)
}

func TestCacheHit(t *testing.T) {
	cache := NewCache(CacheConfig{})
	clock := newTestClock()
	keys := &swappableKeys{keys: []Key{publicKey("k1", testP256Key())}}
	cached, fresh := cachedPair(t, cache, keys, clock)
	raw := es256Token(t, "k1", validClaims())

	first, err := cached.Verify(context.Background(), raw)
	if err != nil {
		t.Fatal(err)
	}
	if st := cache.Stats(); st.Entries != 1 || st.Hits != 0 || st.Misses != 1 {
		t.Fatalf("after the first Verify: %+v, want 1 entry, 0 hits, 1 miss", st)
	}
	for range 3 {
		again, err := cached.Verify(context.Background(), raw)
		if err != nil {
			t.Fatal(err)
		}
		if again != first {
			t.Fatal("a cache hit did not return the cached token")
		}
	}
	if st := cache.Stats(); st.Hits != 3 || st.Entries != 1 {
		t.Fatalf("after three more: %+v, want 3 hits", st)
	}
	if c := sameAnswer(t, cached, fresh, raw); c != "ok" {
		t.Fatalf("code %s", c)
	}
	// A different token with the same prefix is not the cached one.
	other := es256Token(t, "k1", map[string]any{"iss": "https://issuer.example", "sub": "user-2", "aud": "api://orders", "exp": testNow.Unix() + 60})
	if tok, err := cached.Verify(context.Background(), other); err != nil || tok.Subject != "user-2" {
		t.Fatalf("other token: %v, %v", tok, err)
	}
}

// A hit re-checks exp, nbf and iat against the clock, with the skew.
func TestCacheTimes(t *testing.T) {
	cache := NewCache(CacheConfig{})
	clock := newTestClock()
	keys := &swappableKeys{keys: []Key{publicKey("k1", testP256Key())}}
	cached, fresh := cachedPair(t, cache, keys, clock)
	raw := es256Token(t, "k1", validClaims()) // nbf, iat now-60; exp now+3600

	steps := []struct {
		at   int64 // seconds after testNow
		want Code
	}{
		{0, "ok"},
		{3600 + 60, "ok"},       // within the skew after exp
		{3600 + 61, Expired},    // past it: dropped, rejected as fresh
		{0, "ok"},               // cached again
		{-60 - 60, "ok"},        // clock set back, within the skew
		{-60 - 61, NotYetValid}, // before nbf - skew
		{3600 + 61, Expired},
	}
	for _, s := range steps {
		clock.sec.Store(testNow.Unix() + s.at)
		if got := sameAnswer(t, cached, fresh, raw); got != s.want {
			t.Fatalf("at now%+ds: %s, want %s", s.at, got, s.want)
		}
		if got := cache.Stats().Entries; s.want != "ok" && got != 0 {
			t.Fatalf("at now%+ds: a rejected token stays cached (%d entries)", s.at, got)
		}
	}
}

// A hit needs the key that verified the token in the key set now.
func TestCacheKeyChanges(t *testing.T) {
	k1 := publicKey("k1", testP256Key())
	other := publicKey("k1", testP384Key()) // same kid, other key
	restricted := k1
	restricted.Algorithm = "ES384"
	stranger := publicKey("k2", testP256Key())

	cases := []struct {
		name string
		next []Key
		err  error
		want Code
		hit  bool
	}{
		{"same set", nil, nil, "ok", true},
		{"refetched, same key", []Key{publicKey("k0", testEdKey()), publicKey("k1", testP256Key())}, nil, "ok", true},
		{"removed", []Key{publicKey("k0", testEdKey())}, nil, UnknownKID, false},
		{"same kid, other key", []Key{other}, nil, AlgNotAllowed, false},
		{"restricted to another alg", []Key{restricted}, nil, AlgNotAllowed, false},
		{"same key, other kid", []Key{stranger}, nil, UnknownKID, false},
		{"key source fails", nil, errors.New("jwks unavailable"), UnknownKID, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cache := NewCache(CacheConfig{})
			keys := &swappableKeys{keys: []Key{k1}}
			cached, fresh := cachedPair(t, cache, keys, newTestClock())
			raw := es256Token(t, "k1", validClaims())
			if got := sameAnswer(t, cached, fresh, raw); got != "ok" {
				t.Fatalf("before: %s", got)
			}
			if c.next != nil || c.err != nil {
				keys.set(c.next, c.err)
			}
			hits := cache.Stats().Hits
			if got := sameAnswer(t, cached, fresh, raw); got != c.want {
				t.Fatalf("after: %s, want %s", got, c.want)
			}
			if hit := cache.Stats().Hits > hits; hit != c.hit {
				t.Fatalf("hit = %v, want %v", hit, c.hit)
			}
			if c.want != "ok" && c.err == nil && cache.Stats().Entries != 0 {
				t.Fatal("the entry outlived its key")
			}
		})
	}
}

// Rejections are never cached.
func TestCacheKeepsOnlyAccepted(t *testing.T) {
	cache := NewCache(CacheConfig{})
	keys := &swappableKeys{keys: []Key{publicKey("k1", testP256Key())}}
	cached, fresh := cachedPair(t, cache, keys, newTestClock())
	wrongAud := validClaims()
	wrongAud["aud"] = "api://billing"
	expired := validClaims()
	expired["exp"] = testNow.Unix() - 3600
	impostor := mint(t, mustEC(elliptic.P256()), map[string]any{"alg": "ES256", "kid": "k1"}, validClaims())
	for _, raw := range []string{
		es256Token(t, "k1", wrongAud),
		es256Token(t, "k1", expired),
		es256Token(t, "k9", validClaims()),
		impostor,
		"not.a.token",
	} {
		for range 2 {
			if got := sameAnswer(t, cached, fresh, raw); got == "ok" {
				t.Fatalf("%s accepted", raw)
			}
		}
	}
	if st := cache.Stats(); st.Entries != 0 || st.Hits != 0 {
		t.Fatalf("rejections cached: %+v", st)
	}
}

// Verifiers sharing a cache see only the tokens they verified.
func TestCacheSharedByVerifiers(t *testing.T) {
	cache := NewCache(CacheConfig{})
	keys := StaticKeys{publicKey("k1", testP256Key())}
	orders, err := NewVerifier(Config{Audiences: []string{"api://orders"}, Keys: keys, Now: fixedNow, Cache: cache})
	if err != nil {
		t.Fatal(err)
	}
	billing, err := NewVerifier(Config{Audiences: []string{"api://billing"}, Keys: keys, Now: fixedNow, Cache: cache})
	if err != nil {
		t.Fatal(err)
	}
	raw := es256Token(t, "k1", validClaims())
	if _, err := orders.Verify(context.Background(), raw); err != nil {
		t.Fatal(err)
	}
	if _, ok := billing.Cached(context.Background(), raw); ok {
		t.Fatal("a verifier used another verifier's entry")
	}
	if _, err := billing.Verify(context.Background(), raw); code(err) != WrongAudience {
		t.Fatalf("billing: %v, want wrong_audience", err)
	}
	if _, ok := orders.Cached(context.Background(), raw); !ok {
		t.Fatal("the accepting verifier lost its entry")
	}
	cache.Clear()
	if _, ok := orders.Cached(context.Background(), raw); ok {
		t.Fatal("Clear kept an entry")
	}
}

// unsignedToken returns a parsed token with claims; the cache is filled
// with it directly, as signing 100k tokens would take the test's time.
func unsignedToken(t testing.TB, claims map[string]any) *Parsed {
	t.Helper()
	raw := segment(t, map[string]any{"alg": "RS256", "kid": "k1", "typ": "JWT"}) + "." + segment(t, claims) + "." + b64(make([]byte, 256))
	p, err := Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func fill(t testing.TB, c *Cache, v *Verifier, n int, claims func(i int) map[string]any) {
	keys := []Key{publicKey("k1", testP256Key())}
	for i := range n {
		p := unsignedToken(t, claims(i))
		tok := p.Unverified
		c.add(v, p, &tok, keys, 0)
	}
}

func smallClaims(i int) map[string]any {
	c := validClaims()
	c["sub"] = fmt.Sprintf("user-%d", i)
	return c
}

func TestCacheBounds(t *testing.T) {
	v := testVerifier(t, publicKey("k1", testP256Key()))
	t.Run("entries", func(t *testing.T) {
		c := NewCache(CacheConfig{MaxEntries: 1000})
		fill(t, c, v, 3000, smallClaims)
		st := c.Stats()
		if st.Entries > 1000 || st.Entries < 900 {
			t.Fatalf("%d entries, want at most 1000 (and most of them used)", st.Entries)
		}
		if st.Evictions != uint64(3000-st.Entries) {
			t.Fatalf("%d evictions for %d entries", st.Evictions, st.Entries)
		}
	})
	t.Run("bytes", func(t *testing.T) {
		const budget = 256 << 10
		c := NewCache(CacheConfig{MaxEntries: 1 << 20, MaxBytes: budget})
		fill(t, c, v, 3000, smallClaims)
		if st := c.Stats(); st.Bytes > budget || st.Entries == 0 || st.Entries == 3000 {
			t.Fatalf("%+v, want at most %d bytes", st, budget)
		}
	})
	t.Run("too large", func(t *testing.T) {
		c := NewCache(CacheConfig{MaxBytes: 4 << 10})
		fill(t, c, v, 1, func(int) map[string]any {
			cl := validClaims()
			cl["blob"] = strings.Repeat("x", 8<<10)
			return cl
		})
		if st := c.Stats(); st.Entries != 0 {
			t.Fatalf("a token larger than the cache was cached: %+v", st)
		}
	})
	t.Run("expired go first", func(t *testing.T) {
		c := NewCache(CacheConfig{MaxEntries: 64})
		fill(t, c, v, 64, func(i int) map[string]any {
			cl := smallClaims(i)
			if i > 0 {
				cl["exp"] = testNow.Unix() - 3600 // expired at testNow
			}
			return cl
		})
		for _, e := range c.shards[0].entries {
			e.used.Store(true) // only expiry sets the first apart
		}
		fill(t, c, v, 16, func(i int) map[string]any { return smallClaims(1000 + i) })
		kept := false
		for _, e := range c.shards[0].entries {
			if e.tok.Subject == "user-0" {
				kept = true
			}
		}
		if !kept {
			t.Fatal("an unexpired entry was evicted while expired ones remained")
		}
	})
}

// entraLikeClaims are the claims of an Entra ID v2 access token (about
// 1.5 KB signed), different for each i.
func entraLikeClaims(i int) map[string]any {
	c := entraClaims()
	c["iss"], c["aud"] = "https://issuer.example", "api://orders"
	c["oid"] = fmt.Sprintf("690222be-ff1a-4d56-abd1-%012d", i)
	c["uti"] = fmt.Sprintf("fqiBqXLPj0eQa82S-%06d", i)
	return c
}

// TestCacheMemory fills a cache with 100,000 small tokens (and 20,000
// Entra-sized ones) and measures the heap they hold: the estimate that bounds the cache must not undercount
// it.
func TestCacheMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("fills a cache with 100,000 tokens")
	}
	v := testVerifier(t, publicKey("k1", testP256Key()))
	for _, c := range []struct {
		name   string
		n      int
		claims func(int) map[string]any
	}{
		{"small", 100_000, smallClaims},
		{"entra", 20_000, entraLikeClaims},
	} {
		t.Run(c.name, func(t *testing.T) {
			n := c.n
			cache := NewCache(CacheConfig{MaxEntries: n, MaxBytes: 1 << 40})
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			fill(t, cache, v, n, c.claims)
			runtime.GC()
			runtime.ReadMemStats(&after)
			st := cache.Stats()
			heap := int64(after.HeapAlloc) - int64(before.HeapAlloc)
			raw := 0
			for _, e := range cache.shards[0].entries {
				raw = len(e.tok.Raw)
				break
			}
			t.Logf("%d tokens of %d bytes: heap %.1f MiB (%d B/token), estimate %.1f MiB (%d B/token)",
				st.Entries, raw, float64(heap)/(1<<20), heap/int64(st.Entries), float64(st.Bytes)/(1<<20), st.Bytes/int64(st.Entries))
			// Each shard holds its share of MaxEntries; tokens do not
			// spread over the shards exactly evenly.
			if st.Entries > n || st.Entries < n*95/100 {
				t.Fatalf("%d entries, want at most %d and nearly as many", st.Entries, n)
			}
			if heap > st.Bytes {
				t.Errorf("the cache holds %d bytes of heap but estimates %d: its memory bound does not hold", heap, st.Bytes)
			}
			runtime.KeepAlive(cache)
		})
	}
}

// Many goroutines verify, hit, evict and clear at once.
func TestCacheConcurrent(t *testing.T) {
	cache := NewCache(CacheConfig{MaxEntries: 64})
	clock := newTestClock()
	keys := &swappableKeys{keys: []Key{publicKey("k1", testP256Key())}}
	cached, _ := cachedPair(t, cache, keys, clock)
	tokens := make([]string, 100)
	for i := range tokens {
		tokens[i] = es256Token(t, "k1", smallClaims(i))
	}
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 300 {
				raw := tokens[(g*7+i)%len(tokens)]
				tok, err := cached.Verify(context.Background(), raw)
				if err != nil || tok.Raw != raw {
					t.Errorf("Verify: %v", err)
					return
				}
				if g == 0 && i%100 == 0 {
					cache.Clear()
				}
			}
		}()
	}
	wg.Wait()
	st := cache.Stats()
	if st.Hits == 0 || st.Entries > 64 {
		t.Fatalf("%+v", st)
	}
}
