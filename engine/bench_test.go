package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"testing"
	"time"

	securityv1beta1 "istio.io/api/security/v1beta1"

	"github.com/idgate/idgate/authn"
	"github.com/idgate/idgate/mint"
	"github.com/idgate/idgate/policy"
	"github.com/idgate/idgate/request"
	"github.com/idgate/idgate/token"
)

// The decision benchmarks decide a GET of an order with an Entra ID v2
// access token (RS256, RSA-2048, about 1.5 KB) against a
// RequestAuthentication and the 10 AuthorizationPolicies (30 rules) of
// policy/testdata/bench. Compare runs with benchstat:
//
//	go test -run='^$' -bench=Decide -count=10 ./engine > new.txt

const benchIssuer = "https://login.microsoftonline.com/11111111-2222-3333-4444-555555555555/v2.0"

type decideBench struct {
	key  *mint.Key
	docs []*policy.Document
	now  time.Time
}

func newDecideBench(b testing.TB) *decideBench {
	return newDecideBenchAlg(b, "RS256")
}

// newDecideBenchAlg is newDecideBench with keys of algorithm alg.
func newDecideBenchAlg(b testing.TB, alg string) *decideBench {
	b.Helper()
	docs, err := policy.Load("../policy/testdata/bench/entra.yaml", "testdata/bench/requestauthentication.yaml")
	if err != nil {
		b.Fatal(err)
	}
	key, err := mint.NewKey(alg)
	if err != nil {
		b.Fatal(err)
	}
	return &decideBench{key: key, docs: docs, now: time.Unix(1_750_000_000, 0)}
}

func (d *decideBench) engine(b testing.TB, cache *authn.Cache) *Engine {
	b.Helper()
	keys := token.StaticKeys{d.key.PublicKey()}
	e, err := New(d.docs, Options{
		Keys:       func(*securityv1beta1.JWTRule) (token.KeySource, error) { return keys, nil },
		Now:        func() time.Time { return d.now },
		TokenCache: cache,
	})
	if err != nil {
		b.Fatal(err)
	}
	return e
}

// token returns a distinct Entra-like access token for the i-th user.
func (d *decideBench) token(b testing.TB, i int) string {
	b.Helper()
	groups := make([]any, 20)
	for g := range groups {
		groups[g] = fmt.Sprintf("aaaaaaaa-0000-0000-0000-0000000001%02d", g)
	}
	raw, err := d.key.Sign(map[string]any{
		"iss": benchIssuer, "aud": "api://orders",
		"sub":   fmt.Sprintf("AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy7%07d", i),
		"iat":   json.Number(fmt.Sprint(d.now.Unix() - 60)),
		"nbf":   json.Number(fmt.Sprint(d.now.Unix() - 60)),
		"exp":   json.Number(fmt.Sprint(d.now.Unix() + 3600)),
		"azp":   "66666666-0000-0000-0000-000000000000",
		"tid":   "11111111-2222-3333-4444-555555555555",
		"oid":   fmt.Sprintf("77777777-0000-0000-0000-%012d", i),
		"name":  "Alice Example",
		"scp":   "Orders.Read Profile.Read",
		"roles": []any{"Orders.Read"}, "groups": groups,
		"preferred_username": "alice@contoso.example",
		"uti":                "fqiBqXLPj0eQa82S-IYFAA", "ver": "2.0",
	}, nil)
	if err != nil {
		b.Fatal(err)
	}
	return raw
}

func benchRequest(raw string) *request.Attributes {
	return &request.Attributes{
		Method: "GET", Scheme: "https", Host: "orders.example.com", Path: "/api/orders/12345",
		Header: http.Header{
			"Authorization": {"Bearer " + raw},
			"User-Agent":    {"orders-web/1.0"},
			"Accept":        {"application/json"},
		},
		SourceIP: netip.MustParseAddr("10.1.2.3"), RemoteIP: netip.MustParseAddr("203.0.113.9"),
		DestinationIP: netip.MustParseAddr("10.1.9.9"), DestinationPort: 8443,
		RequestID: "5f0c7a9e-bench", Frontend: "proxy",
	}
}

func decideAllowed(b *testing.B, e *Engine, a *request.Attributes) {
	if d := e.Decide(context.Background(), a); !d.Allowed {
		b.Fatalf("denied: %d %s: %s", d.Status, d.Reason, d.Detail)
	}
}

// BenchmarkDecide decides one request whose token is verified (uncached,
// the same token every time: parse, RSA verification, claims) or found
// in the token cache (cached).
func BenchmarkDecide(b *testing.B) {
	d := newDecideBench(b)
	a := benchRequest(d.token(b, 0))
	b.Run("uncached", func(b *testing.B) {
		e := d.engine(b, nil)
		decideAllowed(b, e, a)
		b.ReportAllocs()
		for b.Loop() {
			decideAllowed(b, e, a)
		}
	})
	b.Run("cached", func(b *testing.B) {
		cache := authn.NewCache(authn.CacheConfig{})
		e := d.engine(b, cache)
		decideAllowed(b, e, a)
		b.ReportAllocs()
		for b.Loop() {
			decideAllowed(b, e, a)
		}
		if st := cache.Stats(); st.Misses != 1 {
			b.Fatalf("cache %+v, want one miss", st)
		}
	})
	b.Run("cached-parallel", func(b *testing.B) {
		e := d.engine(b, authn.NewCache(authn.CacheConfig{}))
		decideAllowed(b, e, a)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				decideAllowed(b, e, a)
			}
		})
	})
	b.Run("anonymous-denied", func(b *testing.B) {
		e := d.engine(b, authn.NewCache(authn.CacheConfig{}))
		anon := benchRequest("")
		delete(anon.Header, "Authorization")
		b.ReportAllocs()
		for b.Loop() {
			if d := e.Decide(context.Background(), anon); d.Status != http.StatusForbidden {
				b.Fatalf("status %d", d.Status)
			}
		}
	})
}
