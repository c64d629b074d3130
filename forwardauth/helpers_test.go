package forwardauth

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/idgate/idgate/engine"
	"github.com/idgate/idgate/enginetest"
)

const issuer = "https://issuer.example"

// policies: a token is required, except for GET on orders.example's
// /public/ and for partners' addresses on /partner/; /admin is denied to
// everyone.
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
  - to:
    - operation: {hosts: [orders.example], methods: [GET], paths: ["/public/*"]}
  - from:
    - source: {remoteIpBlocks: [203.0.113.0/24]}
    to:
    - operation: {paths: ["/partner/*"]}
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

// localhostPolicies let every request from a loopback source.ip in, and
// require a token from everyone else (examples/localhost-exempt.yaml).
const localhostPolicies = `
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: foo}
spec:
  jwtRules:
  - issuer: https://issuer.example
    audiences: [api://orders]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: token-or-localhost, namespace: foo}
spec:
  rules:
  - from:
    - source: {requestPrincipals: ["*"]}
  - from:
    - source: {ipBlocks: [127.0.0.0/8, "::1/128"]}
`

// fixture is the engine of some policies, whose jwtRules trust its key.
type fixture struct{ *enginetest.Fixture }

func newFixture(t testing.TB, yaml string, opts engine.Options) fixture {
	return fixture{enginetest.New(t, yaml, opts)}
}

func (f fixture) token(t testing.TB, claims map[string]any) string { return f.Token(t, claims) }

// serve runs h on a loopback listener for the test.
func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

// do sends a GET for path with headers to base, and returns the response
// with its body read.
func do(t *testing.T, base, path string, headers map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

// newCheck returns a check request for path with headers, as a proxy
// sends it.
func newCheck(path string, headers map[string]string) *http.Request {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	return req
}

func record(h http.Handler, req *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}
