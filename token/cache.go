package token

import (
	"context"
	"crypto"
	"encoding/json"
	"hash/maphash"
	"slices"
	"sync"
	"sync/atomic"
)

// The bounds a Cache uses when CacheConfig leaves them zero.
const (
	DefaultCacheEntries = 100_000
	DefaultCacheBytes   = 64 << 20
)

// maxCacheShards is the number of independently locked parts of a large
// Cache; a small one has fewer, so that its bounds stay exact.
const maxCacheShards = 64

// evictScan bounds how many entries one eviction looks at.
const evictScan = 32

// CacheConfig bounds a Cache.
type CacheConfig struct {
	// MaxEntries is the most tokens the cache holds; zero means
	// DefaultCacheEntries.
	MaxEntries int
	// MaxBytes bounds the memory the cached tokens take, as estimated
	// from their size (the token, its decoded header and claims, and the
	// cache's own bookkeeping); zero means DefaultCacheBytes. A token
	// larger than its share of MaxBytes is not cached.
	MaxBytes int64
}

// A Cache remembers tokens that Verifiers accepted, so that a token sent
// again is answered without parsing it or checking its signature. A
// Verifier uses it when Config.Cache names it; one Cache may serve many
// Verifiers, each seeing only the tokens it verified itself.
//
// A cache hit answers exactly what a fresh Verify would answer:
//
//   - only accepted tokens are cached; a rejection is never remembered,
//     since most rejections depend on the key set (unknown_kid,
//     bad_signature, alg_not_allowed, a key of another issuer) or on the
//     clock, and caching the rest would let clients fill the cache with
//     tokens nobody signed;
//   - on every hit exp, nbf and iat are checked again against the
//     Verifier's clock, with its skew; a token outside its validity is
//     dropped and verified in full, which rejects it with the usual error;
//   - on every hit the key that verified the token must still be in the
//     Verifier's key set (the same key: kid, restrictions and public key);
//     once it has left, or the key source fails, the token is verified in
//     full;
//   - the issuer and audience checks depend only on the Verifier's
//     configuration, which never changes: a new configuration (a policy
//     reload) makes new Verifiers, which never see the old ones' entries.
//     Clear drops them.
//
// Entries are found by a keyed hash of the whole token, and the token
// itself is compared before an entry is used. The cache is split into
// independently locked shards; a hit takes only a read lock.
//
// A Cache is bounded by entry count and by estimated memory. When full it
// evicts, preferring entries that expired and entries not used since the
// last eviction looked at them (a clock approximation of least recently
// used).
type Cache struct {
	seed       maphash.Seed
	shards     []cacheShard
	maxEntries int   // per shard
	maxBytes   int64 // per shard
}

type cacheShard struct {
	mu      sync.RWMutex
	entries map[uint64]*cacheEntry
	bytes   int64

	hits, misses, evictions atomic.Uint64

	_ [64]byte // keeps shards on separate cache lines
}

// A cacheEntry is one verified token.
type cacheEntry struct {
	v             *Verifier // the Verifier that accepted it
	tok           *Token
	exp, nbf, iat date
	size          int64
	key           atomic.Pointer[keyRef]
	used          atomic.Bool // read since an eviction last looked
}

// keyRef is the key that verified a token: keys[i] of the key set the
// key source returned.
type keyRef struct {
	keys []Key
	i    int
}

// CacheStats are a Cache's counters, for metrics.
type CacheStats struct {
	// Hits counts lookups answered from the cache; Misses counts lookups
	// of tokens it did not hold, or held but had to verify again (expired,
	// key gone).
	Hits, Misses uint64
	// Evictions counts entries dropped to stay within the bounds.
	Evictions uint64
	// Entries and Bytes are the tokens held now and their estimated size.
	Entries int
	Bytes   int64
}

// NewCache returns an empty Cache with the bounds of cfg.
func NewCache(cfg CacheConfig) *Cache {
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = DefaultCacheEntries
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultCacheBytes
	}
	// At least 64 entries a shard, so that eviction has a choice.
	n := 1
	for n < maxCacheShards && cfg.MaxEntries/(2*n) >= 64 {
		n *= 2
	}
	c := &Cache{
		seed:       maphash.MakeSeed(),
		shards:     make([]cacheShard, n),
		maxEntries: cfg.MaxEntries / n,
		maxBytes:   cfg.MaxBytes / int64(n),
	}
	for i := range c.shards {
		c.shards[i].entries = make(map[uint64]*cacheEntry)
	}
	return c
}

// Stats returns the cache's counters.
func (c *Cache) Stats() CacheStats {
	var st CacheStats
	for i := range c.shards {
		sh := &c.shards[i]
		st.Hits += sh.hits.Load()
		st.Misses += sh.misses.Load()
		st.Evictions += sh.evictions.Load()
		sh.mu.RLock()
		st.Entries += len(sh.entries)
		st.Bytes += sh.bytes
		sh.mu.RUnlock()
	}
	return st
}

// Clear drops every entry, typically because the policies (and with them
// the Verifiers) were replaced. The counters are kept.
func (c *Cache) Clear() {
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		clear(sh.entries)
		sh.bytes = 0
		sh.mu.Unlock()
	}
}

func (c *Cache) shard(h uint64) *cacheShard {
	return &c.shards[h&uint64(len(c.shards)-1)]
}

// Cached returns the token raw as v accepted it before, when v's Cache
// holds it and a fresh Verify would accept it now (see Cache). Otherwise
// it returns false, and the caller verifies raw in full. The Token is
// shared: treat it as read-only.
func (v *Verifier) Cached(ctx context.Context, raw string) (*Token, bool) {
	c := v.cache
	if c == nil {
		return nil, false
	}
	h := maphash.String(c.seed, raw)
	sh := c.shard(h)
	sh.mu.RLock()
	e := sh.entries[h]
	sh.mu.RUnlock()
	switch {
	case e == nil || e.tok.Raw != raw:
		sh.misses.Add(1)
		return nil, false
	case e.v != v:
		// Another Verifier's token: this one checks it in full, as the
		// other will find its entry when its turn comes.
		return nil, false
	}
	if v.checkTimes(e.exp, e.nbf, e.iat) != nil || !v.keyStillThere(ctx, e) {
		sh.remove(h, e)
		sh.misses.Add(1)
		return nil, false
	}
	if !e.used.Load() {
		e.used.Store(true)
	}
	sh.hits.Add(1)
	return e.tok, true
}

// keyStillThere reports whether the key that verified e's token is in the
// key set v's key source returns now.
func (v *Verifier) keyStillThere(ctx context.Context, e *cacheEntry) bool {
	keys, err := v.keys.Keys(ctx)
	if err != nil || len(keys) == 0 {
		return false
	}
	ref := e.key.Load()
	if len(keys) == len(ref.keys) && &keys[0] == &ref.keys[0] {
		// The very key set it was verified with; key sets are not
		// modified once returned.
		return true
	}
	old := &ref.keys[ref.i]
	for i := range keys {
		if sameKey(old, &keys[i]) {
			e.key.Store(&keyRef{keys: keys, i: i})
			return true
		}
	}
	return false
}

// sameKey reports whether a and b are the same key with the same
// restrictions, so that whatever one verifies the other verifies too.
func sameKey(a, b *Key) bool {
	if a.ID != b.ID || a.Algorithm != b.Algorithm || a.Use != b.Use || a.Issuer != b.Issuer ||
		(a.Ops == nil) != (b.Ops == nil) || !slices.Equal(a.Ops, b.Ops) {
		return false
	}
	pub, ok := a.Public.(interface{ Equal(crypto.PublicKey) bool })
	return ok && pub.Equal(b.Public)
}

// add caches t, which v verified with keys[k]; p is its parse.
func (c *Cache) add(v *Verifier, p *Parsed, t *Token, keys []Key, k int) {
	size := entrySize(t)
	if size > c.maxBytes {
		return
	}
	e := &cacheEntry{v: v, tok: t, exp: p.exp, nbf: p.nbf, iat: p.iat, size: size}
	e.key.Store(&keyRef{keys: keys, i: k})
	h := maphash.String(c.seed, t.Raw)
	sh := c.shard(h)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if old := sh.entries[h]; old != nil {
		sh.bytes -= old.size
	}
	sh.entries[h] = e
	sh.bytes += size
	for len(sh.entries) > c.maxEntries || sh.bytes > c.maxBytes {
		sh.evictLocked(h)
	}
}

// remove drops e, stored under h, unless it was replaced meanwhile.
func (sh *cacheShard) remove(h uint64, e *cacheEntry) {
	sh.mu.Lock()
	if sh.entries[h] == e {
		delete(sh.entries, h)
		sh.bytes -= e.size
	}
	sh.mu.Unlock()
}

// evictLocked drops one entry other than the one stored under keep. Of up
// to evictScan entries it drops the first that expired, else the first
// not used since an eviction last looked at it, else the first looked at;
// the entries looked at are marked unused.
func (sh *cacheShard) evictLocked(keep uint64) {
	var (
		first, unused  uint64
		found, notUsed bool
		scanned        int
	)
	victim := func() uint64 {
		if notUsed {
			return unused
		}
		return first
	}
	for h, e := range sh.entries { // map order is random
		if h == keep {
			continue
		}
		if e.v.expired(e.exp, e.v.now().Unix()) {
			first, found, notUsed = h, true, false
			break
		}
		if !found {
			first, found = h, true
		}
		if !e.used.Swap(false) && !notUsed {
			unused, notUsed = h, true
		}
		if scanned++; scanned == evictScan {
			break
		}
	}
	if !found {
		return
	}
	h := victim()
	sh.bytes -= sh.entries[h].size
	delete(sh.entries, h)
	sh.evictions.Add(1)
}

// The estimated sizes, in bytes, of the parts of a cached token: an
// entry with its key reference and map slot, a Token, a map (header and
// bucket array), one map member, a slice or interface header.
const (
	entryOverhead  = 384
	tokenOverhead  = 224
	mapOverhead    = 64
	memberOverhead = 80
	headerSize     = 24
)

// entrySize estimates the memory a cached token holds.
func entrySize(t *Token) int64 {
	n := int64(entryOverhead + tokenOverhead + len(t.Raw))
	n += valueSize(t.Header) + valueSize(t.Claims)
	n += int64(headerSize + 16*len(t.Audience))
	return n
}

// valueSize estimates the memory a decoded JSON value holds.
func valueSize(v any) int64 {
	switch x := v.(type) {
	case string:
		return int64(len(x))
	case json.Number:
		return int64(len(x))
	case []any:
		n := int64(headerSize + 16*len(x))
		for _, e := range x {
			n += 16 + valueSize(e)
		}
		return n
	case map[string]any:
		n := int64(mapOverhead)
		for k, e := range x {
			n += memberOverhead + int64(len(k)) + valueSize(e)
		}
		return n
	}
	return 0
}
