package authn

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/idgate/idgate/request"
)

// entraClaims is the claim set of an Entra ID v2 access token for a user
// calling the orders API.
func entraClaims() map[string]any {
	return claims(entra, "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ", map[string]any{
		"aud":                entraAud,
		"nbf":                json.Number(fmt.Sprint(now.Unix() - 60)),
		"aio":                "AVQAq/8TAAAA5m9Yc0V0bWJ2b3Jk",
		"azp":                "6e74172b-be56-4843-9ff4-e66a39bb12e3",
		"azpacr":             "0",
		"name":               "Alice Example",
		"oid":                "690222be-ff1a-4d56-abd1-7e4f7d38e474",
		"preferred_username": "alice@contoso.example",
		"rh":                 "0.AAAA1234abcd.",
		"scp":                "Orders.Read Orders.Write",
		"roles":              []any{"Orders.Admin"},
		"tid":                "11111111-2222-3333-4444-555555555555",
		"uti":                "fqiBqXLPj0eQa82S-IYFAA",
		"ver":                "2.0",
	})
}

// BenchmarkAuthenticate authenticates a request that carries a valid
// Entra-like RS256 access token in its Authorization header.
func BenchmarkAuthenticate(b *testing.B) {
	a := compile(b, "default.yaml")
	r := &request.Attributes{
		Method: "GET", Scheme: "https", Host: "orders.example.com", Path: "/api/orders",
		Header: http.Header{"Authorization": {"Bearer " + sign(b, entra, entraClaims())}, "Accept": {"application/json"}},
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if res := a.Authenticate(ctx, r); res.Identity == nil {
			b.Fatalf("status %d: %v", res.Status, res.Err)
		}
	}
}

// BenchmarkAuthenticateAnonymous authenticates a request without a token.
func BenchmarkAuthenticateAnonymous(b *testing.B) {
	a := compile(b, "default.yaml")
	r := &request.Attributes{Method: "GET", Path: "/api/orders", Query: "page=2", Header: http.Header{"Accept": {"application/json"}}}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if res := a.Authenticate(ctx, r); res.Status != http.StatusOK {
			b.Fatalf("status %d: %v", res.Status, res.Err)
		}
	}
}
