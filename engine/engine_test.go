package engine

import (
	"context"
	"net/http"
	"net/netip"
	"testing"
	"time"

	securityv1beta1 "istio.io/api/security/v1beta1"

	"github.com/idgate/idgate/mint"
	"github.com/idgate/idgate/policy"
	"github.com/idgate/idgate/request"
	"github.com/idgate/idgate/token"
)

const issuer = "https://issuer.example"

const basePolicies = `
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: foo}
spec:
  jwtRules:
  - issuer: https://issuer.example
    audiences: [api://orders]
    jwksUri: https://issuer.example/keys
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: require-jwt, namespace: foo}
spec:
  rules:
  - from:
    - source: {requestPrincipals: ["*"]}
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
	eng *Engine
}

func newFixture(t *testing.T, yaml string) *fixture {
	t.Helper()
	key, err := mint.NewKey("")
	if err != nil {
		t.Fatal(err)
	}
	docs, err := policy.Parse("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	keys := token.StaticKeys{key.PublicKey()}
	eng, err := New(docs, Options{Keys: func(*securityv1beta1.JWTRule) (token.KeySource, error) { return keys, nil }})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{key: key, eng: eng}
}

func (f *fixture) token(t *testing.T, claims map[string]any) string {
	t.Helper()
	now := time.Now().Unix()
	c := map[string]any{"iss": issuer, "sub": "alice", "aud": "api://orders", "iat": now, "exp": now + 3600}
	for k, v := range claims {
		c[k] = v
	}
	s, err := f.key.Sign(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func req(path, tok string) *request.Attributes {
	a := &request.Attributes{
		Method: "GET", Scheme: "http", Host: "example.com", Path: path, Header: http.Header{},
		SourceIP: netip.MustParseAddr("10.0.0.1"), RemoteIP: netip.MustParseAddr("10.0.0.1"),
	}
	if tok != "" {
		a.Header.Set("Authorization", "Bearer "+tok)
	}
	return a
}

// Istio's order (istio-semantics.md §1.1, §1.3): authentication runs
// before DENY and ALLOW, so a bad token is a 401 even where a DENY policy
// matches, and an audience mismatch is a 403 from authentication.
func TestDecideOrder(t *testing.T) {
	f := newFixture(t, basePolicies)
	good := f.token(t, nil)
	tests := []struct {
		name    string
		a       *request.Attributes
		status  int
		reason  string
		policy  string
		rule    int
		allowed bool
	}{
		{"valid token", req("/api", good), 200, "allowed_by_policy", "foo/require-jwt", 0, true},
		{"anonymous: no ALLOW matched, the ALLOW policy is named", req("/api", ""), 403, "no_allow_match", "foo/require-jwt", -1, false},
		{"DENY beats ALLOW", req("/admin", good), 403, "denied_by_policy", "foo/deny-admin", 0, false},
		{"bad token is 401 before DENY", req("/admin", f.token(t, map[string]any{"exp": 1})), 401, "expired", "foo/jwt", 0, false},
		{"wrong audience is 403 from authentication", req("/api", f.token(t, map[string]any{"aud": "other"})), 403, "wrong_audience", "foo/jwt", 0, false},
		{"unknown issuer is 401", req("/api", f.token(t, map[string]any{"iss": "https://other"})), 401, "wrong_issuer", "", -1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, d := range []Decision{f.eng.Decide(context.Background(), tt.a), f.eng.Explain(context.Background(), tt.a)} {
				if d.Status != tt.status || d.Reason != tt.reason || d.Policy != tt.policy || d.Rule != tt.rule || d.Allowed != tt.allowed {
					t.Errorf("decision = %d %s %q rule %d allowed=%v; want %d %s %q rule %d allowed=%v\n%s",
						d.Status, d.Reason, d.Policy, d.Rule, d.Allowed, tt.status, tt.reason, tt.policy, tt.rule, tt.allowed, d)
				}
				if d.Detail == "" {
					t.Error("no detail")
				}
			}
		})
	}
}

func TestExplainTracesDecideDoesNot(t *testing.T) {
	f := newFixture(t, basePolicies)
	a := req("/api", "")
	if d := f.eng.Decide(context.Background(), a); d.Trace != nil {
		t.Error("Decide returned a trace")
	}
	d := f.eng.Explain(context.Background(), a)
	if d.Trace == nil || len(d.Trace.Policies) != 2 {
		t.Fatalf("Explain trace = %+v, want both policies", d.Trace)
	}
}

// A CUSTOM policy names an external authorizer idgate cannot call; Istio
// denies such requests, and CUSTOM runs before authentication
// (istio-semantics.md §1.1), so it decides even for a bad token.
func TestCustomPolicyFailsClosed(t *testing.T) {
	f := newFixture(t, basePolicies+`
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ext, namespace: foo}
spec:
  action: CUSTOM
  provider: {name: opa}
  rules:
  - to:
    - operation: {paths: ["/ext/*"]}
`)
	for _, tok := range []string{f.token(t, nil), "garbage"} {
		d := f.eng.Decide(context.Background(), req("/ext/x", tok))
		if d.Allowed || d.Status != 403 || d.Reason != CustomNotConfigured || d.Policy != "foo/ext" {
			t.Errorf("token %.10q: decision = %d %s %s, want 403 %s foo/ext", tok, d.Status, d.Reason, d.Policy, CustomNotConfigured)
		}
	}
	if d := f.eng.Decide(context.Background(), req("/api", f.token(t, nil))); d.Status != 200 {
		t.Errorf("a request the CUSTOM policy does not match = %d %s, want 200", d.Status, d.Reason)
	}
}

func TestReloadKeepsOldSetOnError(t *testing.T) {
	f := newFixture(t, basePolicies)
	docs := f.eng.Documents()
	bad, err := policy.Parse("bad.yaml", []byte(`
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: foo}
spec:
  jwtRules:
  - issuer: https://issuer.example
`))
	if err != nil {
		t.Fatal(err)
	}
	eng, err := New(bad, Options{Keys: func(*securityv1beta1.JWTRule) (token.KeySource, error) {
		return nil, errNoKeys
	}})
	if err == nil || eng != nil {
		t.Fatalf("New with failing keys = %v, %v; want an error", eng, err)
	}
	f.eng.opts.Keys = func(*securityv1beta1.JWTRule) (token.KeySource, error) { return nil, errNoKeys }
	if err := f.eng.Reload(bad); err == nil {
		t.Fatal("Reload with failing keys succeeded")
	}
	if got := f.eng.Documents(); len(got) != len(docs) || got[0] != docs[0] {
		t.Error("a failed reload replaced the policies in force")
	}
	if d := f.eng.Decide(context.Background(), req("/api", "")); d.Status != 403 {
		t.Errorf("after a failed reload, anonymous = %d, want the old set's 403", d.Status)
	}
}

var errNoKeys = &token.Error{Code: token.UnknownKID, Detail: "no keys"}
