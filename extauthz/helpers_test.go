package extauthz

import (
	"io"
	"log/slog"
	"testing"

	"github.com/idgate/idgate/engine"
	"github.com/idgate/idgate/enginetest"
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

// fixture is the engine of the policies above, whose jwtRules trust its
// key.
type fixture struct{ *enginetest.Fixture }

func newFixture(t testing.TB, opts engine.Options) fixture {
	return fixture{enginetest.New(t, policies, opts)}
}

func (f fixture) token(t testing.TB, claims map[string]any) string { return f.Token(t, claims) }

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))
