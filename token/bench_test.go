package token

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
	"github.com/golang-jwt/jwt/v5"
	"github.com/lestrrat-go/jwx/v3/jwa"
	jwxjwt "github.com/lestrrat-go/jwx/v3/jwt"
)

// The benchmarks verify a realistic Entra ID v2 access token: RS256 with a
// 2048-bit key, about 1.5 KB, 25 claims, against a set of three keys.

const (
	benchTenant   = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	entraIssuer   = "https://login.microsoftonline.com/" + benchTenant + "/v2.0"
	entraAudience = "6e74172b-be56-4843-9ff4-e66a39bb12e3"
)

func entraClaims() map[string]any {
	groups := make([]any, 3)
	for i := range groups {
		groups[i] = strings.Repeat(string(rune('a'+i)), 8) + "-1111-2222-3333-444455556666"
	}
	return map[string]any{
		"aud":                entraAudience,
		"iss":                entraIssuer,
		"iat":                testNow.Unix() - 300,
		"nbf":                testNow.Unix() - 300,
		"exp":                testNow.Unix() + 4200,
		"aio":                "AXQAi/8UAAAAqsKn2XZn9G4NsWt2XMi7g0EYOhbu9ZRWjexsB6ySz1X1H8w=",
		"azp":                "c44b4083-3bb0-49c1-b47d-974e53cbdf3c",
		"azpacr":             "0",
		"idp":                "https://sts.windows.net/" + benchTenant + "/",
		"name":               "Abe Lincoln",
		"oid":                "690222be-ff1a-4d56-abd1-7e4f7d38e474",
		"preferred_username": "abeli@microsoft.com",
		"rh":                 "1.AQoAv4j5cvGGr0GRqy180BHbRytBBMS7NMFJtH2XTlPL3zwKAL0.",
		"roles":              []any{"Orders.Read", "Orders.Write"},
		"scp":                "access_as_user",
		"sid":                "0019b2f4-3a42-4d1f-8a6b-1c0e5f4d2a77",
		"sub":                "HKZpfaHyWadeOouYlitjrI-KffTm222X5rrV3xDqfKQ",
		"tid":                benchTenant,
		"uti":                "fqiBqXLPj0eQa82S-IYFAA",
		"ver":                "2.0",
		"groups":             groups,
		"wids":               []any{"b79fbf4d-3ef9-4689-8143-76b194e85509"},
		"xms_tcdt":           1289241547,
		"xms_cc":             []any{"cp1"},
		"acct":               0,
	}
}

type entraBench struct {
	raw      string
	input    string
	sig      []byte
	pub      *rsa.PublicKey
	verifier *Verifier
}

func newEntraBench(b *testing.B) *entraBench {
	b.Helper()
	priv := testRSAKey()
	header := map[string]any{"typ": "JWT", "alg": "RS256", "kid": "L1KfKFI_jnXbwWc22xZxw1sUHH0"}
	raw := mint(b, priv, header, entraClaims())
	if len(raw) < 1400 || len(raw) > 1800 {
		b.Fatalf("token is %d bytes, want about 1.5 KB", len(raw))
	}
	keys := StaticKeys{
		{ID: "aaaaaaaaaaaaaaaaaaaaaaaaaaa", Public: &testRSAKey2().PublicKey, Use: "sig", Issuer: "https://login.microsoftonline.com/{tenantid}/v2.0"},
		{ID: "L1KfKFI_jnXbwWc22xZxw1sUHH0", Public: &priv.PublicKey, Use: "sig", Issuer: "https://login.microsoftonline.com/{tenantid}/v2.0"},
		{ID: "bbbbbbbbbbbbbbbbbbbbbbbbbbb", Public: &testRSAKey2().PublicKey, Use: "sig", Issuer: "https://login.microsoftonline.com/{tenantid}/v2.0"},
	}
	v, err := NewVerifier(Config{
		Issuers:   []string{entraIssuer},
		Audiences: []string{entraAudience, "api://" + entraAudience},
		Keys:      keys,
		Now:       func() time.Time { return testNow },
	})
	if err != nil {
		b.Fatal(err)
	}
	i := strings.LastIndexByte(raw, '.')
	sig, err := base64.RawURLEncoding.DecodeString(raw[i+1:])
	if err != nil {
		b.Fatal(err)
	}
	return &entraBench{raw: raw, input: raw[:i], sig: sig, pub: &priv.PublicKey, verifier: v}
}

// BenchmarkRS256Floor is the cost no verifier can avoid: hashing the
// signing input and one RSA PKCS #1 v1.5 verification.
func BenchmarkRS256Floor(b *testing.B) {
	e := newEntraBench(b)
	b.ReportAllocs()
	for b.Loop() {
		d := sha256.Sum256([]byte(e.input))
		if err := rsa.VerifyPKCS1v15(e.pub, crypto.SHA256, d[:], e.sig); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerify is the full check: parse, key selection, signature,
// issuer, times and audience.
func BenchmarkVerify(b *testing.B) {
	e := newEntraBench(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.verifier.Verify(ctx, e.raw); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParse is the structural parse alone.
func BenchmarkParse(b *testing.B) {
	e := newEntraBench(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(e.raw); err != nil {
			b.Fatal(err)
		}
	}
}

// The same token with other Go libraries, configured to check as much as
// they can of what Verify checks.

func BenchmarkGolangJWT(b *testing.B) {
	e := newEntraBench(b)
	parser := jwt.NewParser(
		jwt.WithValidMethods([]string{"RS256"}),
		jwt.WithIssuer(entraIssuer),
		jwt.WithAudience(entraAudience),
		jwt.WithLeeway(60*time.Second),
		jwt.WithTimeFunc(func() time.Time { return testNow }),
	)
	keyfunc := func(*jwt.Token) (any, error) { return e.pub, nil }
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parser.ParseWithClaims(e.raw, jwt.MapClaims{}, keyfunc); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGoJose(b *testing.B) {
	e := newEntraBench(b)
	b.ReportAllocs()
	for b.Loop() {
		tok, err := josejwt.ParseSigned(e.raw, []jose.SignatureAlgorithm{jose.RS256})
		if err != nil {
			b.Fatal(err)
		}
		var std josejwt.Claims
		var all map[string]any
		if err := tok.Claims(e.pub, &std, &all); err != nil {
			b.Fatal(err)
		}
		if err := std.ValidateWithLeeway(josejwt.Expected{
			Issuer:      entraIssuer,
			AnyAudience: josejwt.Audience{entraAudience},
			Time:        testNow,
		}, 60*time.Second); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkJWX(b *testing.B) {
	e := newEntraBench(b)
	clock := jwxjwt.ClockFunc(func() time.Time { return testNow })
	b.ReportAllocs()
	for b.Loop() {
		if _, err := jwxjwt.ParseString(e.raw,
			jwxjwt.WithKey(jwa.RS256(), e.pub),
			jwxjwt.WithIssuer(entraIssuer),
			jwxjwt.WithAudience(entraAudience),
			jwxjwt.WithClock(clock),
			jwxjwt.WithAcceptableSkew(60*time.Second),
		); err != nil {
			b.Fatal(err)
		}
	}
}
