// Package enginetest builds engines for tests: Istio policies written as
// YAML, one signing key that every jwtRule trusts, and tokens those
// policies accept.
package enginetest

import (
	"testing"
	"time"

	securityv1beta1 "istio.io/api/security/v1beta1"

	"github.com/idgate/idgate/engine"
	"github.com/idgate/idgate/mint"
	"github.com/idgate/idgate/policy"
	"github.com/idgate/idgate/token"
)

// The claims Token puts in every token unless told otherwise.
const (
	Issuer   = "https://issuer.example"
	Audience = "api://orders"
	Subject  = "alice"
	OID      = "oid-alice"
)

// Fixture is an engine whose jwtRules all trust Key.
type Fixture struct {
	Key    *mint.Key
	Engine *engine.Engine
	Docs   []*policy.Document
}

// New compiles the policies in yaml into an engine with opts, whose Keys
// it replaces with a new ES256 test key (fast to sign and verify).
func New(t testing.TB, yaml string, opts engine.Options) *Fixture {
	t.Helper()
	key, err := mint.NewKey("ES256")
	if err != nil {
		t.Fatal(err)
	}
	docs, err := policy.Parse("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	keys := token.StaticKeys{key.PublicKey()}
	opts.Keys = func(*securityv1beta1.JWTRule) (token.KeySource, error) { return keys, nil }
	eng, err := engine.New(docs, opts)
	if err != nil {
		t.Fatal(err)
	}
	return &Fixture{Key: key, Engine: eng, Docs: docs}
}

// Token signs a token with Issuer, Subject, Audience, OID and a validity
// of an hour from now, with claims added, replaced or (nil) removed.
func (f *Fixture) Token(t testing.TB, claims map[string]any) string {
	t.Helper()
	now := time.Now().Unix()
	c := map[string]any{"iss": Issuer, "sub": Subject, "aud": Audience, "oid": OID, "iat": now, "exp": now + 3600}
	for k, v := range claims {
		if v == nil {
			delete(c, k)
			continue
		}
		c[k] = v
	}
	s, err := f.Key.Sign(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
