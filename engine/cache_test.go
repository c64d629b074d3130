package engine_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/idgate/idgate/authn"
	"github.com/idgate/idgate/engine"
	"github.com/idgate/idgate/enginetest"
	"github.com/idgate/idgate/policy"
	"github.com/idgate/idgate/request"
	"github.com/idgate/idgate/token"
)

const ordersRA = `
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: shop}
spec:
  jwtRules:
  - issuer: https://issuer.example
    audiences: [api://orders]
`

// A cached token is decided as a fresh one would be, and a policy reload
// stops the old rules' verdicts from being reused.
func TestTokenCacheAcrossReload(t *testing.T) {
	cache := authn.NewCache(authn.CacheConfig{})
	f := enginetest.New(t, ordersRA, engine.Options{TokenCache: cache})
	raw := f.Token(t, nil)
	a := &request.Attributes{Method: "GET", Path: "/", Header: http.Header{"Authorization": {"Bearer " + raw}}}
	decide := func() engine.Decision { return f.Engine.Decide(context.Background(), a) }

	first, second := decide(), decide()
	if first.Identity == nil || second.Identity == nil || second.Identity.Principal() != first.Identity.Principal() {
		t.Fatalf("cached decision differs: %v / %v", first, second)
	}
	if st := cache.Stats(); st.Hits != 1 || st.Entries != 1 {
		t.Fatalf("cache %+v, want one hit and one entry", st)
	}
	// Explain does not use the cache: it explains a cached token in full.
	ex := f.Engine.Explain(context.Background(), a)
	if len(ex.Authn.Tokens) != 1 || ex.Authn.Tokens[0].UnverifiedIssuer != enginetest.Issuer || ex.Identity.Claims.String("sub") == "" {
		t.Fatalf("Explain of a cached token: %+v, claims %v", ex.Authn.Tokens, ex.Identity.Claims.Map())
	}
	if st := cache.Stats(); st.Hits != 1 {
		t.Fatalf("Explain used the cache: %+v", st)
	}

	// The audience the token has is no longer accepted.
	docs, err := policy.Parse("new.yaml", []byte(`
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: shop}
spec:
  jwtRules:
  - issuer: https://issuer.example
    audiences: [api://billing]
`))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Engine.Reload(docs); err != nil {
		t.Fatal(err)
	}
	if st := cache.Stats(); st.Entries != 0 {
		t.Fatalf("reload kept %d entries", st.Entries)
	}
	if d := decide(); d.Status != http.StatusForbidden || d.Reason != string(token.WrongAudience) {
		t.Fatalf("after reload: %d %s, want 403 wrong_audience", d.Status, d.Reason)
	}
}

// A decision answered from the cache says so when printed, rather than
// calling the request anonymous.
func TestCachedDecisionString(t *testing.T) {
	f := enginetest.New(t, ordersRA, engine.Options{TokenCache: authn.NewCache(authn.CacheConfig{})})
	a := &request.Attributes{Method: "GET", Path: "/", Header: http.Header{"Authorization": {"Bearer " + f.Token(t, nil)}}}
	f.Engine.Decide(context.Background(), a)
	got := f.Engine.Decide(context.Background(), a).String()
	if !strings.Contains(got, "verified-token cache") || strings.Contains(got, "anonymous") {
		t.Errorf("String() of a cached decision:\n%s", got)
	}
}
