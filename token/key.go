package token

import (
	"context"
	"crypto"
)

// A Key is one public key a token may be verified with, as a JWK Set
// publishes it. Only the fields that restrict its use are kept.
type Key struct {
	// ID is the JWK "kid"; empty when the key has none.
	ID string
	// Public is *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey.
	Public crypto.PublicKey
	// Algorithm is the JWK "alg"; empty means any algorithm of the key's type.
	Algorithm string
	// Use is the JWK "use"; empty or "sig" allows signatures.
	Use string
	// Ops is the JWK "key_ops"; nil means unrestricted, otherwise it must
	// contain "verify".
	Ops []string
	// Issuer is the Entra "issuer" member, possibly with "{tenantid}";
	// empty means any issuer.
	Issuer string
}

// A KeySource supplies the keys of one issuer (or one key set).
//
// Keys returns the keys known now; it may fetch them the first time.
// Refresh is called when a token names a kid that Keys did not return: the
// source may fetch again (rate-limited, so a burst of unknown kids causes at
// most one fetch) and returns the keys known afterwards. A source that
// cannot refresh returns the same keys as Keys.
type KeySource interface {
	Keys(ctx context.Context) ([]Key, error)
	Refresh(ctx context.Context) ([]Key, error)
}

// StaticKeys is a KeySource with a fixed set of keys.
type StaticKeys []Key

// Keys returns the keys.
func (s StaticKeys) Keys(context.Context) ([]Key, error) { return s, nil }

// Refresh returns the keys; a static set never changes.
func (s StaticKeys) Refresh(context.Context) ([]Key, error) { return s, nil }
