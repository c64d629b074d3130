package metrics

import (
	"context"
	"net/http"
	"testing"
	"time"

	securityv1beta1 "istio.io/api/security/v1beta1"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/idgate/idgate/authn"
	"github.com/idgate/idgate/engine"
	"github.com/idgate/idgate/mint"
	"github.com/idgate/idgate/policy"
	"github.com/idgate/idgate/request"
	"github.com/idgate/idgate/token"
)

// Requests decided with a token cache show up as its hits, misses and
// size on /metrics.
func TestTokenCacheMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg)
	if _, ok := scrape(t, reg)["idgate_token_cache_entries"]; ok {
		t.Fatal("token cache metrics exported without a cache")
	}

	key, err := mint.NewKey("ES256")
	if err != nil {
		t.Fatal(err)
	}
	docs, err := policy.Parse("p.yaml", []byte(`
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: shop}
spec:
  jwtRules: [{issuer: https://issuer.example}]
`))
	if err != nil {
		t.Fatal(err)
	}
	cache := authn.NewCache(authn.CacheConfig{})
	m.ObserveTokenCache(cache.Stats)
	keys := token.StaticKeys{key.PublicKey()}
	eng, err := engine.New(docs, engine.Options{
		Keys:       func(*securityv1beta1.JWTRule) (token.KeySource, error) { return keys, nil },
		TokenCache: cache,
		Observer:   m,
	})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().Unix()
	raw, err := key.Sign(map[string]any{"iss": "https://issuer.example", "sub": "alice", "exp": now + 3600}, nil)
	if err != nil {
		t.Fatal(err)
	}
	a := &request.Attributes{Method: "GET", Path: "/", Header: http.Header{"Authorization": {"Bearer " + raw}}}
	for range 3 {
		if d := eng.Decide(context.Background(), a); d.Identity == nil {
			t.Fatalf("not authenticated: %s", d.Detail)
		}
	}

	fams := scrape(t, reg)
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"idgate_token_cache_lookups_total", map[string]string{"result": "hit"}, 2},
		{"idgate_token_cache_lookups_total", map[string]string{"result": "miss"}, 1},
		{"idgate_token_cache_evictions_total", nil, 0},
		{"idgate_token_cache_entries", nil, 1},
	} {
		if got, ok := value(fams, c.name, c.labels); !ok || got != c.want {
			t.Errorf("%s%v = %v (present %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	if got, _ := value(fams, "idgate_token_cache_bytes", nil); got <= 0 {
		t.Errorf("idgate_token_cache_bytes = %v, want the entry's size", got)
	}
}
