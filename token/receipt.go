package token

import (
	"context"
	"crypto"
	"math"
	"slices"
	"sync/atomic"
)

// A Receipt records how a Verifier accepted a token: the token's times
// and the key that verified it. With it the Verifier can tell later,
// without parsing the token or checking its signature, whether it would
// accept the token again (Verifier.Recheck). Caches of verified tokens
// keep it instead of the token.
type Receipt struct {
	exp, nbf, iat int64 // packed dates (packDate)
	key           atomic.Pointer[keyRef]
}

// noDate is a packed date that is not set.
const noDate = math.MinInt64

// packDate packs d into one int64: noDate when it is not set. A date set
// to noDate itself becomes the next second, which every check treats
// alike (long expired, long valid).
func packDate(d date) int64 {
	switch {
	case !d.set:
		return noDate
	case d.sec == noDate:
		return noDate + 1
	}
	return d.sec
}

func unpackDate(sec int64) date {
	if sec == noDate {
		return date{}
	}
	return date{sec: sec, set: true}
}

// keyRef is the key that verified a token: keys[i] of the key set the
// key source returned. The refs of one key set are shared by every
// Receipt of a token verified with it (keyRefs).
type keyRef struct {
	keys []Key
	i    int
}

// keyRefs are the refs of every key of one key set.
type keyRefs struct {
	keys []Key
	refs []keyRef
}

// Receipt returns how the Verifier accepted t; nil for a token that no
// Verifier accepted (Parse's Unverified).
func (t *Token) Receipt() *Receipt { return t.receipt }

// Recheck reports whether v would accept again, now, the token it accepted
// with receipt r:
//
//   - exp, nbf and iat hold against v's clock, with its skew;
//   - the key that verified the token is still in the key set v's key
//     source returns now (the same key: kid, restrictions and public key).
//     When the source fails, Recheck reports false.
//
// The issuer and audience checks depend only on v's Config, which never
// changes, so a Recheck of a token v accepted answers exactly what a fresh
// Verify would. r must come from a token v itself verified.
func (v *Verifier) Recheck(ctx context.Context, r *Receipt) bool {
	if v.checkTimes(unpackDate(r.exp), unpackDate(r.nbf), unpackDate(r.iat)) != nil {
		return false
	}
	keys, err := v.keys.Keys(ctx)
	if err != nil || len(keys) == 0 {
		return false
	}
	ref := r.key.Load()
	if len(keys) == len(ref.keys) && &keys[0] == &ref.keys[0] {
		// The very key set it was verified with; key sets are not
		// modified once returned.
		return true
	}
	old := &ref.keys[ref.i]
	for i := range keys {
		if sameKey(old, &keys[i]) {
			r.key.Store(v.keyRef(keys, i))
			return true
		}
	}
	return false
}

// Expired reports whether the token of receipt r, which v accepted, has
// expired by v's clock, allowing for the skew.
func (v *Verifier) Expired(r *Receipt) bool {
	return v.expired(unpackDate(r.exp), v.now().Unix())
}

// newReceipt returns the receipt of token p, verified with keys[k].
func (v *Verifier) newReceipt(p *Parsed, keys []Key, k int) *Receipt {
	r := &Receipt{exp: packDate(p.exp), nbf: packDate(p.nbf), iat: packDate(p.iat)}
	r.key.Store(v.keyRef(keys, k))
	return r
}

// keyRef returns the shared ref of keys[i].
func (v *Verifier) keyRef(keys []Key, i int) *keyRef {
	cur := v.refs.Load()
	if cur == nil || len(cur.keys) != len(keys) || &cur.keys[0] != &keys[0] {
		cur = &keyRefs{keys: keys, refs: make([]keyRef, len(keys))}
		for j := range cur.refs {
			cur.refs[j] = keyRef{keys: keys, i: j}
		}
		v.refs.Store(cur)
	}
	return &cur.refs[i]
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
