package authn

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"hash/maphash"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/idgate/idgate/request"
	"github.com/idgate/idgate/token"
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
	// from what each entry holds; zero means DefaultCacheBytes. An entry
	// larger than its share of MaxBytes is not cached.
	MaxBytes int64
}

// A Cache is the verified-token cache: it remembers what authentication
// made of the tokens it accepted (the identity, the headers to set), so
// that a token sent again is answered without parsing it, checking its
// signature or building its identity again. An Authenticator uses it when
// Options.Cache names it; one Cache may serve many Authenticators, each
// seeing only its own entries.
//
// A cache hit answers exactly what authenticating afresh would answer:
//
//   - only a request with exactly one token is answered from the cache,
//     and only a token accepted by the first rule whose issuer it names,
//     at the same location; a rejection is never remembered, since most
//     depend on the key set or the clock, and caching the rest would let
//     clients fill the cache with tokens nobody signed;
//   - on every hit the rule's token.Verifier re-checks the token
//     (token.Verifier.Recheck): exp, nbf and iat against the clock, and
//     that the key that verified the token is still in the key set; a
//     token that fails is dropped and authenticated in full, which
//     rejects it with the usual error;
//   - everything else depends only on the Authenticator's rules, which
//     never change: new policies make a new Authenticator, which never
//     sees the old one's entries. Clear drops them.
//
// Entries are found by a keyed hash (hash/maphash, with a random seed
// made when the cache is) of the whole token, and confirmed by the length
// of the token and the last sigTail characters of its signature: a token
// matches an entry only if it has the hash of the token that was verified
// and ends with that token's signature, which nobody can produce without
// holding the token. Holding it, one gets no more from a look-alike than
// from the token itself. The token itself is not kept.
//
// An entry keeps the identity with only the claims the Authenticator was
// told policies read (Options.Claims), and shares the strings many tokens
// hold (issuer, audiences, tenant, roles, groups, scopes) with the other
// entries.
//
// The cache is split into independently locked shards; a hit takes only
// a read lock. It is bounded by entry count and by estimated memory. When
// full it evicts, preferring entries that expired and entries not used
// since the last eviction looked at them (a clock approximation of least
// recently used).
type Cache struct {
	seed       maphash.Seed
	shards     []cacheShard
	maxEntries int   // per shard
	maxBytes   int64 // per shard
	lists      listTable
}

// listTable shares among entries the lists of strings (groups, roles,
// scopes) that many identities hold alike. A list is kept while an entry
// holds it.
type listTable struct {
	mu    sync.Mutex
	lists map[string]*sharedList
}

type sharedList struct {
	v    any // a []any of strings
	refs int
}

type cacheShard struct {
	mu      sync.RWMutex
	entries map[uint64]*cacheEntry
	bytes   int64

	hits, misses, evictions atomic.Uint64

	_ [64]byte // keeps shards on separate cache lines
}

// A cacheEntry is one accepted token and what authentication made of it.
type cacheEntry struct {
	rule    *rule         // the rule that accepted it
	sig     [sigTail]byte // the end of its signature
	n       int32         // its length
	loc     int32         // the location it was found at
	size    int32
	used    atomic.Bool // read since an eviction last looked
	receipt *token.Receipt
	// id and set are what a hit returns: the identity and the output
	// headers. Shared by every hit; read-only.
	id  request.Identity
	set []Header
}

// CacheStats are a Cache's counters, for metrics.
type CacheStats struct {
	// Hits counts lookups answered from the cache; Misses counts lookups
	// of tokens it did not hold, or held but had to authenticate again
	// (expired, key gone).
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
	c.lists.lists = make(map[string]*sharedList)
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
// the Authenticator) were replaced. The counters are kept.
func (c *Cache) Clear() {
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		for _, e := range sh.entries {
			c.lists.release(e)
		}
		clear(sh.entries)
		sh.bytes = 0
		sh.mu.Unlock()
	}
}

func (c *Cache) shard(h uint64) *cacheShard {
	return &c.shards[h&uint64(len(c.shards)-1)]
}

// sigTail is how many characters of the end of a token's signature an
// entry keeps: 96 bits of a signature, which can be neither guessed nor
// computed without the signing key.
const sigTail = 16

// sigEnd returns the last sigTail characters of raw's signature segment,
// padded with zeros when it is shorter.
func sigEnd(raw string) [sigTail]byte {
	var end [sigTail]byte
	sig := raw[strings.LastIndexByte(raw, '.')+1:]
	copy(end[:], sig[max(0, len(sig)-sigTail):])
	return end
}

// lookup returns the entry of a, when it holds raw found at location loc
// and the rule that accepted it would accept it again now; else nil.
func (c *Cache) lookup(ctx context.Context, a *Authenticator, raw string, loc int) *cacheEntry {
	h := maphash.String(c.seed, raw)
	sh := c.shard(h)
	sh.mu.RLock()
	e := sh.entries[h]
	sh.mu.RUnlock()
	if e == nil || e.rule.owner != a || int(e.loc) != loc || int(e.n) != len(raw) || e.sig != sigEnd(raw) {
		sh.misses.Add(1)
		return nil
	}
	if !e.rule.verifier.Recheck(ctx, e.receipt) {
		c.remove(sh, h, e)
		sh.misses.Add(1)
		return nil
	}
	if !e.used.Load() {
		e.used.Store(true)
	}
	sh.hits.Add(1)
	return e
}

// add caches e, the entry of token raw, made by newCacheEntry.
func (c *Cache) add(raw string, e *cacheEntry) {
	if int64(e.size) > c.maxBytes {
		c.lists.release(e)
		return
	}
	h := maphash.String(c.seed, raw)
	sh := c.shard(h)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if old := sh.entries[h]; old != nil {
		sh.bytes -= int64(old.size)
		c.lists.release(old)
	}
	sh.entries[h] = e
	sh.bytes += int64(e.size)
	for len(sh.entries) > c.maxEntries || sh.bytes > c.maxBytes {
		c.evictLocked(sh, h)
	}
}

// remove drops e, stored under h in sh, unless it was replaced meanwhile.
func (c *Cache) remove(sh *cacheShard, h uint64, e *cacheEntry) {
	sh.mu.Lock()
	if sh.entries[h] == e {
		delete(sh.entries, h)
		sh.bytes -= int64(e.size)
		c.lists.release(e)
	}
	sh.mu.Unlock()
}

// evictLocked drops one entry other than the one stored under keep. Of up
// to evictScan entries it drops the first that expired, else the first
// not used since an eviction last looked at it, else the first looked at;
// the entries looked at are marked unused.
func (c *Cache) evictLocked(sh *cacheShard, keep uint64) {
	var (
		first, unused  uint64
		found, notUsed bool
		scanned        int
	)
	for h, e := range sh.entries { // map order is random
		if h == keep {
			continue
		}
		if e.rule.verifier.Expired(e.receipt) {
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
	h := first
	if notUsed {
		h = unused
	}
	e := sh.entries[h]
	sh.bytes -= int64(e.size)
	c.lists.release(e)
	delete(sh.entries, h)
	sh.evictions.Add(1)
}

// newCacheEntry returns the entry for token t, found at location loc and
// accepted by rule ri of a, with the output headers set. Its lists of
// strings are shared with the other entries of c: it must be added (add),
// which releases them if it cannot keep it.
func (c *Cache) newCacheEntry(a *Authenticator, t *token.Token, loc, ri int, set []Header) *cacheEntry {
	e := &cacheEntry{
		rule:    a.rules[ri],
		sig:     sigEnd(t.Raw),
		n:       int32(len(t.Raw)),
		loc:     int32(loc),
		receipt: t.Receipt(),
		set:     set,
	}
	var lists int64 // the shared lists this entry is the first to hold
	share := func(l []any) any {
		shared, first := c.lists.share(l)
		if first {
			lists += listSize(l)
		}
		return shared
	}
	fillIdentity(&e.id, t, e.rule, a.keep, share)
	// A header value that is a claim's value is the claim's copy; the
	// others are the entry's own.
	var values int64
	for i := range e.set {
		values += allocSize(len(e.set[i].Value))
		for _, v := range e.id.Claims.All() {
			if s, ok := v.(string); ok && s == e.set[i].Value {
				e.set[i].Value = s
				values -= allocSize(len(s))
				break
			}
		}
	}
	e.size = int32(entrySize(e) + lists + values)
	return e
}

// allStrings reports whether list holds strings only: whether a
// listTable shares it.
func allStrings(list []any) bool {
	for _, v := range list {
		if _, ok := v.(string); !ok {
			return false
		}
	}
	return true
}

// listKey returns the key of a list of strings in a listTable, or false
// when list holds something else.
func listKey(list []any) (string, bool) {
	if !allStrings(list) {
		return "", false
	}
	var b []byte
	for _, v := range list {
		s := v.(string)
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return string(b), true
}

// share returns the table's copy of list, a list of strings, counts one
// more holder of it, and reports whether that is the first; nil when list
// holds anything but strings.
func (t *listTable) share(list []any) (shared any, first bool) {
	key, ok := listKey(list)
	if !ok {
		return nil, false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	sl := t.lists[key]
	if sl == nil {
		sl = &sharedList{v: list}
		t.lists[key] = sl
	}
	sl.refs++
	return sl.v, sl.refs == 1
}

// release counts one holder less of the shared lists of e's identity.
func (t *listTable) release(e *cacheEntry) {
	for _, v := range e.id.Claims.All() {
		list, ok := v.([]any)
		if !ok {
			continue
		}
		key, ok := listKey(list)
		if !ok {
			continue
		}
		t.mu.Lock()
		if sl := t.lists[key]; sl != nil && sameList(sl.v.([]any), list) {
			if sl.refs--; sl.refs == 0 {
				delete(t.lists, key)
			}
		}
		t.mu.Unlock()
	}
}

// entrySize estimates the heap an entry holds: its own allocations,
// rounded up to the allocator's size classes, with its slot in a shard's
// map. Interned strings are shared by every identity and not counted; a
// shared list (a list of strings) is not counted: newCacheEntry counts it
// for the entry that first held it, and the output header values that are
// not a claim's.
func entrySize(e *cacheEntry) int64 {
	id := &e.id
	n := allocSize(int(unsafe.Sizeof(*e))) + mapSlot + allocSize(int(unsafe.Sizeof(token.Receipt{})))
	n += allocSize(len(id.Subject)) + allocSize(len(id.Fingerprint))
	n += allocSize(16 * len(id.Audiences))
	n += allocSize(int(unsafe.Sizeof(request.Claim{})) * id.Claims.Len())
	for name, v := range id.Claims.All() {
		n += claimSize(name, v)
	}
	n += allocSize(int(unsafe.Sizeof(Header{})) * len(e.set))
	return n
}

// mapSlot is the memory one entry takes in a shard's map, at its lowest
// load.
const mapSlot = 40

// claimSize estimates the heap claim value v of an identity holds (see
// claimValue).
func claimSize(name string, v any) int64 {
	switch x := v.(type) {
	case string:
		if shared[name] {
			return 0
		}
		return allocSize(16) + allocSize(len(x))
	case []any:
		if allStrings(x) {
			return 0 // shared
		}
		return listSize(x)
	}
	return valueSize(v)
}

// valueSize estimates the heap a copied JSON value holds (copyValue).
func valueSize(v any) int64 {
	switch x := v.(type) {
	case string:
		return allocSize(16) + allocSize(len(x))
	case json.Number:
		return allocSize(16) + allocSize(len(x))
	case bool, nil:
		return 0
	case []any:
		return listSize(x)
	case map[string]any:
		n := allocSize(48) + allocSize(8+len(x)*(16+16)) + allocSize(16)
		for k, e := range x {
			n += allocSize(len(k)) + valueSize(e)
		}
		return n
	}
	return allocSize(16)
}

// listSize estimates the heap a list holds: its header, its backing array
// and its values, strings being interned.
func listSize(list []any) int64 {
	n := allocSize(24) + allocSize(16*len(list))
	for _, e := range list {
		if _, ok := e.(string); !ok {
			n += valueSize(e)
		}
	}
	return n
}

// sizeClasses are the allocator's size classes up to 1 KiB.
var sizeClasses = [...]int{8, 16, 24, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224, 240, 256,
	288, 320, 352, 384, 416, 448, 480, 512, 576, 640, 704, 768, 896, 1024}

// allocSize returns the memory an allocation of n bytes takes, rounded
// up: to its size class up to 1 KiB, to a multiple of 1 KiB above.
func allocSize(n int) int64 {
	if n == 0 {
		return 0
	}
	for _, c := range sizeClasses {
		if n <= c {
			return int64(c)
		}
	}
	return int64((n + 1023) &^ 1023)
}

// sameList reports whether a and b are the same list, not only equal ones.
func sameList(a, b []any) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}
