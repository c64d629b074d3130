package authn

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	securityv1beta1 "istio.io/api/security/v1beta1"

	"github.com/idgate/idgate/policy"
	"github.com/idgate/idgate/token"
)

// cachedPair returns an Authenticator for policies with cache, and an
// identical one without: the uncached one says what authenticating afresh
// answers.
func cachedPair(t testing.TB, policies string, cache *Cache, opts Options) (cached, fresh *Authenticator) {
	t.Helper()
	docs, err := policy.Parse("test.yaml", []byte(policies))
	if err != nil {
		t.Fatal(err)
	}
	if fresh, err = Compile(docs, opts); err != nil {
		t.Fatal(err)
	}
	opts.Cache = cache
	if cached, err = Compile(docs, opts); err != nil {
		t.Fatal(err)
	}
	return cached, fresh
}

const oneRule = `
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: shop}
spec:
  jwtRules:
  - issuer: test-issuer-1@istio.io
    audiences: [api://orders]
    outputClaimToHeaders: [{header: x-user, claim: sub}]
`

// swappableKeys is a KeySource whose keys a test replaces.
type swappableKeys struct {
	mu   sync.Mutex
	keys []token.Key
	err  error
}

func (s *swappableKeys) Keys(context.Context) ([]token.Key, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keys, s.err
}

func (s *swappableKeys) Refresh(ctx context.Context) ([]token.Key, error) { return s.Keys(ctx) }

func (s *swappableKeys) set(keys []token.Key, err error) {
	s.mu.Lock()
	s.keys, s.err = keys, err
	s.mu.Unlock()
}

// clockOptions are options whose keys and clock a test changes.
func clockOptions(keys token.KeySource, clock *atomic.Int64) Options {
	return Options{
		Keys: func(*securityv1beta1.JWTRule) (token.KeySource, error) { return keys, nil },
		Now:  func() time.Time { return time.Unix(clock.Load(), 0) },
	}
}

func TestCacheHit(t *testing.T) {
	cache := NewCache(CacheConfig{})
	cached, fresh := cachedPair(t, oneRule, cache, options())
	raw := sign(t, iss1, claims(iss1, "sub-1", map[string]any{"aud": "api://orders"}))
	want := fresh.Authenticate(context.Background(), get("/", "Authorization", "Bearer "+raw))
	if want.Status != http.StatusOK {
		t.Fatalf("fresh: %d %v", want.Status, want.Err)
	}
	first := cached.Authenticate(context.Background(), get("/", "Authorization", "Bearer "+raw))
	sameOutcome(t, "first", want, first)
	if st := cache.Stats(); st.Entries != 1 || st.Hits != 0 || st.Misses != 1 {
		t.Fatalf("after the first request: %+v, want 1 entry, 0 hits, 1 miss", st)
	}
	for range 3 {
		again := cached.Authenticate(context.Background(), get("/", "Authorization", "Bearer "+raw))
		sameOutcome(t, "hit", want, again)
		if again.Identity != first.Identity || again.Tokens != nil {
			t.Fatal("a hit did not return the cached identity")
		}
	}
	if st := cache.Stats(); st.Hits != 3 || st.Entries != 1 {
		t.Fatalf("after three more: %+v, want 3 hits", st)
	}

	// The same token at another location the rule reads is not the entry.
	sameOutcome(t, "query parameter", fresh.Authenticate(context.Background(), get("/?access_token="+raw)),
		cached.Authenticate(context.Background(), get("/?access_token="+raw)))
	// Twice the same token: not answered from the cache.
	hits := cache.Stats().Hits
	twice := get("/?access_token="+raw, "Authorization", "Bearer "+raw)
	sameOutcome(t, "twice", fresh.Authenticate(context.Background(), twice), cached.Authenticate(context.Background(), twice))
	if cache.Stats().Hits != hits {
		t.Fatal("a request with two tokens was answered from the cache")
	}
	// Spoofed copies of the output header are removed on a hit too.
	spoofed := get("/", "Authorization", "Bearer "+raw, "X_User", "mallory")
	sameOutcome(t, "spoofed", fresh.Authenticate(context.Background(), spoofed), cached.Authenticate(context.Background(), spoofed))
	if got := cached.Authenticate(context.Background(), spoofed).Changes.RemoveHeaders; !strings.Contains(strings.ToLower(fmt.Sprint(got)), "x_user") {
		t.Fatalf("removed %v, want X_User among them", got)
	}
}

// A hit re-checks exp, nbf and iat against the clock, with the skew.
func TestCacheTimes(t *testing.T) {
	var clock atomic.Int64
	clock.Store(now.Unix())
	keys := token.StaticKeys{keys()[iss1].PublicKey()}
	cache := NewCache(CacheConfig{})
	cached, fresh := cachedPair(t, oneRule, cache, clockOptions(keys, &clock))
	raw := sign(t, iss1, claims(iss1, "sub-1", map[string]any{
		"aud": "api://orders", "nbf": json.Number(fmt.Sprint(now.Unix() - 60)),
	})) // nbf, iat now-60; exp now+3600
	for _, s := range []struct {
		at   int64 // seconds after now
		want token.Code
	}{
		{0, ""},
		{3600 + 60, ""},               // within the skew after exp
		{3600 + 61, token.Expired},    // past it: dropped, rejected as fresh
		{0, ""},                       // cached again
		{-60 - 60, ""},                // clock set back, within the skew
		{-60 - 61, token.NotYetValid}, // before nbf - skew
		{3600 + 61, token.Expired},
	} {
		clock.Store(now.Unix() + s.at)
		r := get("/", "Authorization", "Bearer "+raw)
		want := fresh.Authenticate(context.Background(), r)
		if code := errCode(want); code != s.want {
			t.Fatalf("at now%+ds: fresh says %q, want %q", s.at, code, s.want)
		}
		sameOutcome(t, fmt.Sprintf("at now%+ds", s.at), want, cached.Authenticate(context.Background(), r))
		if got := cache.Stats().Entries; s.want != "" && got != 0 {
			t.Fatalf("at now%+ds: a rejected token stays cached (%d entries)", s.at, got)
		}
	}
}

func errCode(r Result) token.Code {
	if r.Err == nil {
		return ""
	}
	return r.Err.Code
}

// A hit needs the key that verified the token in the key set now.
func TestCacheKeyRemoved(t *testing.T) {
	var clock atomic.Int64
	clock.Store(now.Unix())
	src := &swappableKeys{keys: []token.Key{keys()[iss1].PublicKey()}}
	cache := NewCache(CacheConfig{})
	cached, fresh := cachedPair(t, oneRule, cache, clockOptions(src, &clock))
	raw := sign(t, iss1, claims(iss1, "sub-1", map[string]any{"aud": "api://orders"}))
	r := get("/", "Authorization", "Bearer "+raw)
	sameOutcome(t, "before", fresh.Authenticate(context.Background(), r), cached.Authenticate(context.Background(), r))
	src.set([]token.Key{keys()[iss2].PublicKey()}, nil)
	want := fresh.Authenticate(context.Background(), r)
	if errCode(want) != token.UnknownKID && errCode(want) != token.BadSignature {
		t.Fatalf("fresh after the key left: %v", want.Err)
	}
	sameOutcome(t, "after", want, cached.Authenticate(context.Background(), r))
	if st := cache.Stats(); st.Entries != 0 {
		t.Fatalf("the entry outlived its key: %+v", st)
	}
}

// Rejections are never cached.
func TestCacheKeepsOnlyAccepted(t *testing.T) {
	tk := newTokens(t)
	cache := NewCache(CacheConfig{})
	cached, fresh := cachedPair(t, oneRule, cache, options())
	for _, raw := range []string{tk.t1, tk.t1expired, tk.t1badsig, tk.t2, tk.unknown, "not.a.token"} {
		for range 2 {
			r := get("/", "Authorization", "Bearer "+raw)
			want := fresh.Authenticate(context.Background(), r)
			if want.Status == http.StatusOK {
				t.Fatalf("%s accepted", raw)
			}
			sameOutcome(t, raw, want, cached.Authenticate(context.Background(), r))
		}
	}
	if st := cache.Stats(); st.Entries != 0 || st.Hits != 0 {
		t.Fatalf("rejections cached: %+v", st)
	}
}

// A token that an earlier rule with its issuer rejects and a later one
// accepts is not cached: the earlier rule's answer could change with its
// keys. A token the first rule with its issuer accepts is.
func TestCacheOnlyFirstRuleOfTheIssuer(t *testing.T) {
	const twoRules = `
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: shop}
spec:
  jwtRules:
  - issuer: test-issuer-2@istio.io
  - issuer: test-issuer-1@istio.io
    audiences: [api://orders]
  - issuer: test-issuer-1@istio.io
    audiences: [api://billing]
`
	cache := NewCache(CacheConfig{})
	cached, fresh := cachedPair(t, twoRules, cache, options())
	billing := sign(t, iss1, claims(iss1, "sub-1", map[string]any{"aud": "api://billing"}))
	orders := sign(t, iss1, claims(iss1, "sub-1", map[string]any{"aud": "api://orders"}))
	for range 2 {
		for _, raw := range []string{billing, orders} {
			r := get("/", "Authorization", "Bearer "+raw)
			want := fresh.Authenticate(context.Background(), r)
			if want.Status != http.StatusOK {
				t.Fatalf("fresh: %v", want.Err)
			}
			sameOutcome(t, raw, want, cached.Authenticate(context.Background(), r))
		}
	}
	if st := cache.Stats(); st.Entries != 1 || st.Hits != 1 {
		t.Fatalf("%+v, want the orders token alone cached (1 entry, 1 hit)", st)
	}
}

// Authenticators sharing a cache see only their own entries; Clear drops
// them all.
func TestCacheSharedByAuthenticators(t *testing.T) {
	cache := NewCache(CacheConfig{})
	orders, _ := cachedPair(t, oneRule, cache, options())
	billing, _ := cachedPair(t, strings.ReplaceAll(oneRule, "api://orders", "api://billing"), cache, options())
	raw := sign(t, iss1, claims(iss1, "sub-1", map[string]any{"aud": "api://orders"}))
	r := get("/", "Authorization", "Bearer "+raw)
	if res := orders.Authenticate(context.Background(), r); res.Status != http.StatusOK {
		t.Fatal(res.Err)
	}
	if res := billing.Authenticate(context.Background(), r); res.Status != http.StatusForbidden {
		t.Fatalf("billing: %d %v, want 403", res.Status, res.Err)
	}
	if res := orders.Authenticate(context.Background(), r); res.Status != http.StatusOK || cache.Stats().Hits != 1 {
		t.Fatalf("orders lost its entry: %+v", cache.Stats())
	}
	cache.Clear()
	orders.Authenticate(context.Background(), r)
	if st := cache.Stats(); st.Hits != 1 || st.Entries != 1 {
		t.Fatalf("Clear kept an entry: %+v", st)
	}
}

// A token whose keyed hash finds an entry is still not answered from it
// unless it carries that entry's signature.
func TestCacheConfirmsTheSignature(t *testing.T) {
	cache := NewCache(CacheConfig{})
	cached, _ := cachedPair(t, oneRule, cache, options())
	alice := sign(t, iss1, claims(iss1, "alice", map[string]any{"aud": "api://orders"}))
	mallory := sign(t, iss1, claims(iss1, "mallory", map[string]any{"aud": "api://orders"}))
	cached.Authenticate(context.Background(), get("/", "Authorization", "Bearer "+alice))
	var e *cacheEntry
	for i := range cache.shards {
		for _, x := range cache.shards[i].entries {
			e = x
		}
	}
	// Store alice's entry where mallory's token is looked up, as a hash
	// collision would.
	forged := &cacheEntry{rule: e.rule, sig: e.sig, n: int32(len(mallory)), loc: e.loc, size: e.size, receipt: e.receipt, id: e.id, set: e.set}
	cache.add(mallory, forged)
	if got := cache.lookup(context.Background(), cached, mallory, 0); got != nil {
		t.Fatal("an entry was used for a token with another signature")
	}
	forged.sig = sigEnd(mallory)
	if got := cache.lookup(context.Background(), cached, mallory, 0); got != forged {
		t.Fatal("the test does not reach the signature check")
	}
}

// fillCache verifies n distinct tokens of issuer 1 with a, filling
// its cache.
func fillCache(t testing.TB, a *Authenticator, n int, extra func(i int) map[string]any) {
	t.Helper()
	for i := range n {
		c := claims(iss1, fmt.Sprintf("user-%d", i), map[string]any{"aud": "api://orders"})
		if extra != nil {
			for k, v := range extra(i) {
				c[k] = v
			}
		}
		if res := a.Authenticate(context.Background(), get("/", "Authorization", "Bearer "+sign(t, iss1, c))); res.Status != http.StatusOK {
			t.Fatal(res.Err)
		}
	}
}

func TestCacheBounds(t *testing.T) {
	t.Run("entries", func(t *testing.T) {
		cache := NewCache(CacheConfig{MaxEntries: 200})
		a, _ := cachedPair(t, oneRule, cache, options())
		fillCache(t, a, 600, nil)
		st := cache.Stats()
		if st.Entries > 200 || st.Entries < 180 {
			t.Fatalf("%d entries, want at most 200 (and most of them used)", st.Entries)
		}
		if st.Evictions != uint64(600-st.Entries) {
			t.Fatalf("%d evictions for %d entries", st.Evictions, st.Entries)
		}
	})
	t.Run("bytes", func(t *testing.T) {
		const budget = 64 << 10
		cache := NewCache(CacheConfig{MaxEntries: 1 << 20, MaxBytes: budget})
		a, _ := cachedPair(t, oneRule, cache, options())
		fillCache(t, a, 600, nil)
		if st := cache.Stats(); st.Bytes > budget || st.Entries == 0 || st.Entries == 600 {
			t.Fatalf("%+v, want at most %d bytes", st, budget)
		}
	})
	t.Run("too large", func(t *testing.T) {
		cache := NewCache(CacheConfig{MaxBytes: 4 << 10})
		a, _ := cachedPair(t, oneRule, cache, options())
		fillCache(t, a, 1, func(int) map[string]any { return map[string]any{"blob": strings.Repeat("x", 8<<10)} })
		if st := cache.Stats(); st.Entries != 0 {
			t.Fatalf("an entry larger than the cache was cached: %+v", st)
		}
	})
	t.Run("expired go first", func(t *testing.T) {
		var clock atomic.Int64
		clock.Store(now.Unix())
		cache := NewCache(CacheConfig{MaxEntries: 64})
		a, _ := cachedPair(t, oneRule, cache, clockOptions(token.StaticKeys{keys()[iss1].PublicKey()}, &clock))
		fillCache(t, a, 64, func(i int) map[string]any {
			if i == 0 {
				return map[string]any{"exp": json.Number(fmt.Sprint(now.Unix() + 86400))}
			}
			return nil // expires at now+3600
		})
		for _, e := range cache.shards[0].entries {
			e.used.Store(true) // only expiry sets the first apart
		}
		clock.Store(now.Unix() + 7200)
		fillCache(t, a, 16, func(i int) map[string]any {
			return map[string]any{"sub": fmt.Sprintf("late-%d", i), "exp": json.Number(fmt.Sprint(now.Unix() + 86400))}
		})
		kept := false
		for _, e := range cache.shards[0].entries {
			if e.id.Subject == "user-0" {
				kept = true
			}
		}
		if !kept {
			t.Fatal("an unexpired entry was evicted while expired ones remained")
		}
	})
}

// Many goroutines authenticate, hit, evict and clear at once.
func TestCacheConcurrent(t *testing.T) {
	cache := NewCache(CacheConfig{MaxEntries: 64})
	a, _ := cachedPair(t, oneRule, cache, options())
	tokens := make([]string, 100)
	for i := range tokens {
		tokens[i] = sign(t, iss1, claims(iss1, fmt.Sprintf("user-%d", i), map[string]any{"aud": "api://orders"}))
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				sub := (g*7 + i) % len(tokens)
				res := a.Authenticate(context.Background(), get("/", "Authorization", "Bearer "+tokens[sub]))
				if res.Status != http.StatusOK || res.Identity.Subject != fmt.Sprintf("user-%d", sub) {
					t.Errorf("request %d: %d %v", i, res.Status, res.Err)
					return
				}
				if g == 0 && i%50 == 0 {
					cache.Clear()
				}
			}
		})
	}
	wg.Wait()
	if st := cache.Stats(); st.Hits == 0 || st.Entries > 64 {
		t.Fatalf("%+v", st)
	}
}
