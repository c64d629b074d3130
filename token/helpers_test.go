package token

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Test keys are generated once per test binary; RSA generation is slow.
var (
	testRSAKey  = sync.OnceValue(func() *rsa.PrivateKey { return mustRSA(2048) })
	testRSAKey2 = sync.OnceValue(func() *rsa.PrivateKey { return mustRSA(2048) })
	testP256Key = sync.OnceValue(func() *ecdsa.PrivateKey { return mustEC(elliptic.P256()) })
	testP384Key = sync.OnceValue(func() *ecdsa.PrivateKey { return mustEC(elliptic.P384()) })
	testP521Key = sync.OnceValue(func() *ecdsa.PrivateKey { return mustEC(elliptic.P521()) })
	testEdKey   = sync.OnceValue(func() ed25519.PrivateKey {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			panic(err)
		}
		return k
	})
)

func mustRSA(bits int) *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		panic(err)
	}
	return k
}

func mustEC(c elliptic.Curve) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
}

// testNow is the time tests verify at.
var testNow = time.Unix(1_700_000_000, 0)

func fixedNow() time.Time { return testNow }

func secondsDuration(n int64) time.Duration { return time.Duration(n) * time.Second }

// b64 encodes a segment.
func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// segment encodes v as JSON and then base64url.
func segment(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b64(b)
}

// sign signs input with a golang-jwt signing method.
func sign(t testing.TB, alg string, priv crypto.Signer, input string) string {
	t.Helper()
	m := jwt.GetSigningMethod(alg)
	if m == nil {
		t.Fatalf("no signing method %s", alg)
	}
	sig, err := m.Sign(input, priv)
	if err != nil {
		t.Fatal(err)
	}
	return b64(sig)
}

// mint makes a token with header and claims signed by priv with the
// header's alg.
func mint(t testing.TB, priv crypto.Signer, header, claims map[string]any) string {
	t.Helper()
	input := segment(t, header) + "." + segment(t, claims)
	return input + "." + sign(t, header["alg"].(string), priv, input)
}

// validClaims are claims that pass the default test verifier.
func validClaims() map[string]any {
	return map[string]any{
		"iss": "https://issuer.example",
		"sub": "user-1",
		"aud": "api://orders",
		"iat": testNow.Unix() - 60,
		"nbf": testNow.Unix() - 60,
		"exp": testNow.Unix() + 3600,
	}
}

// publicKey returns a Key for priv's public key.
func publicKey(kid string, priv crypto.Signer) Key {
	return Key{ID: kid, Public: priv.Public()}
}

// testVerifier returns a verifier for the default test issuer and
// audience, with keys.
func testVerifier(t testing.TB, keys ...Key) *Verifier {
	t.Helper()
	v, err := NewVerifier(Config{
		Issuers:   []string{"https://issuer.example"},
		Audiences: []string{"api://orders"},
		Keys:      StaticKeys(keys),
		Now:       func() time.Time { return testNow },
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// code returns the Code of a Verify error, or "ok".
func code(err error) Code {
	if err == nil {
		return "ok"
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return Code("not an *Error: " + err.Error())
}

// countingKeys is a KeySource that returns before until refreshed, then
// after, and counts the calls.
type countingKeys struct {
	mu            sync.Mutex
	before, after []Key
	refreshed     bool
	keysCalls     int
	refreshCalls  int
	err           error
}

func (c *countingKeys) Keys(context.Context) ([]Key, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.keysCalls++
	if c.err != nil {
		return nil, c.err
	}
	if c.refreshed {
		return c.after, nil
	}
	return c.before, nil
}

func (c *countingKeys) Refresh(context.Context) ([]Key, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.refreshCalls++
	c.refreshed = true
	return c.after, c.err
}
