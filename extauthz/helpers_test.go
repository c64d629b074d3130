package extauthz

import (
	"io"
	"log/slog"
	"testing"
	"time"

	securityv1beta1 "istio.io/api/security/v1beta1"

	"github.com/idgate/idgate/engine"
	"github.com/idgate/idgate/mint"
	"github.com/idgate/idgate/policy"
	"github.com/idgate/idgate/token"
)

const issuer = "https://issuer.example"

// policies: a token is required, except for workloads of namespace
// "frontend" on /internal/, partners' addresses (remote.ip) on /partner/,
// mesh peers (source.ip) on /mesh/, and TLS connections to
// orders.example on port 8443 under /tls/; /admin is denied to everyone.
const policies = `
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: foo}
spec:
  jwtRules:
  - issuer: https://issuer.example
    audiences: [api://orders]
    outputClaimToHeaders:
    - {header: x-user-oid, claim: oid}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow, namespace: foo}
spec:
  rules:
  - from:
    - source: {requestPrincipals: ["*"]}
  - from:
    - source: {namespaces: [frontend]}
    to:
    - operation: {paths: ["/internal/*"]}
  - from:
    - source: {remoteIpBlocks: [203.0.113.0/24]}
    to:
    - operation: {paths: ["/partner/*"]}
  - from:
    - source: {ipBlocks: [10.1.0.0/16]}
    to:
    - operation: {paths: ["/mesh/*"]}
  - to:
    - operation: {ports: ["8443"], paths: ["/tls/*"]}
    when:
    - {key: connection.sni, values: [orders.example]}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-admin, namespace: foo}
spec:
  action: DENY
  rules:
  - to:
    - operation: {paths: ["/admin"]}
`

type fixture struct {
	key *mint.Key
	eng *engine.Engine
}

func newFixture(t testing.TB, opts engine.Options) *fixture {
	t.Helper()
	key, err := mint.NewKey("ES256")
	if err != nil {
		t.Fatal(err)
	}
	docs, err := policy.Parse("test.yaml", []byte(policies))
	if err != nil {
		t.Fatal(err)
	}
	keys := token.StaticKeys{key.PublicKey()}
	opts.Keys = func(*securityv1beta1.JWTRule) (token.KeySource, error) { return keys, nil }
	eng, err := engine.New(docs, opts)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{key: key, eng: eng}
}

// token signs a token the policies accept, with claims added, replaced
// or (nil) removed.
func (f *fixture) token(t testing.TB, claims map[string]any) string {
	t.Helper()
	now := time.Now().Unix()
	c := map[string]any{"iss": issuer, "sub": "alice", "aud": "api://orders", "oid": "oid-alice", "iat": now, "exp": now + 3600}
	for k, v := range claims {
		if v == nil {
			delete(c, k)
			continue
		}
		c[k] = v
	}
	s, err := f.key.Sign(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))
