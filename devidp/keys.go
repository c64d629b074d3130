package devidp

import (
	"encoding/json"
	"fmt"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/idgate/idgate/mint"
)

// keyRing holds the provider's signing keys. As Entra ID does, it
// publishes a key before signing with it: the active key signs, the next
// key is already in the JWKS, and a rotation makes the next key active,
// retires the active one (still published until its grace period ends)
// and creates a new next key.
type keyRing struct {
	grace time.Duration
	now   func() time.Time

	mu      sync.Mutex
	active  *mint.Key
	next    *mint.Key
	retired []retiredKey
}

type retiredKey struct {
	key   *mint.Key
	until time.Time
}

func newKeyRing(grace time.Duration, now func() time.Time) (*keyRing, error) {
	active, err := mint.NewKey(mint.DefaultAlgorithm)
	if err != nil {
		return nil, err
	}
	next, err := mint.NewKey(mint.DefaultAlgorithm)
	if err != nil {
		return nil, err
	}
	return &keyRing{grace: grace, now: now, active: active, next: next}, nil
}

// signer returns the key that signs new tokens.
func (r *keyRing) signer() *mint.Key {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.active
}

// rotate makes the next key active and returns the new active key's ID.
func (r *keyRing) rotate() (string, error) {
	fresh, err := mint.NewKey(mint.DefaultAlgorithm)
	if err != nil {
		return "", err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.retired = append(r.retired, retiredKey{key: r.active, until: r.now().Add(r.grace)})
	r.active, r.next = r.next, fresh
	return r.active.ID(), nil
}

// published returns the keys a JWKS lists now: the active, the next and
// the retired keys still in their grace period.
func (r *keyRing) published() []*mint.Key {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	kept := r.retired[:0]
	for _, k := range r.retired {
		if now.Before(k.until) {
			kept = append(kept, k)
		}
	}
	clear(r.retired[len(kept):])
	r.retired = kept
	keys := []*mint.Key{r.active, r.next}
	for _, k := range r.retired {
		keys = append(keys, k.key)
	}
	return keys
}

// jwks returns the JWK Set of the published keys as Entra publishes it:
// kty, use, kid, n and e, no alg; with issuer set, each key carries that
// "issuer" member (the v2 keys endpoint).
func (r *keyRing) jwks(issuer string) ([]byte, error) {
	var keys []map[string]any
	for _, k := range r.published() {
		data, err := json.Marshal(jose.JSONWebKey{Key: k.PublicKey().Public, KeyID: k.ID(), Use: "sig"})
		if err != nil {
			return nil, fmt.Errorf("devidp: marshal key %s: %w", k.ID(), err)
		}
		var m map[string]any
		if err := json.Unmarshal(data, &m); err != nil {
			return nil, fmt.Errorf("devidp: marshal key %s: %w", k.ID(), err)
		}
		delete(m, "alg")
		if issuer != "" {
			m["issuer"] = issuer
		}
		keys = append(keys, m)
	}
	return json.Marshal(map[string]any{"keys": keys})
}
