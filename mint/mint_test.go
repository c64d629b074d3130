package mint

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/idgate/idgate/token"
)

var now = time.Unix(1_700_000_000, 0)

func verifier(t *testing.T, keys ...token.Key) *token.Verifier {
	t.Helper()
	v, err := token.NewVerifier(token.Config{
		Issuers:   []string{"https://issuer.example"},
		Audiences: []string{"api://orders"},
		Keys:      token.StaticKeys(keys),
		Now:       func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func claims() map[string]any {
	return map[string]any{
		"iss": "https://issuer.example",
		"aud": "api://orders",
		"sub": "alice",
		"iat": json.Number("1700000000"),
		"exp": json.Number("1700003600"),
	}
}

// Every algorithm mints tokens that token.Verify accepts with the key's
// public half, as a JWK Set and as a token.Key.
func TestSignVerifies(t *testing.T) {
	for _, alg := range []string{"", "RS256", "ES256", "EdDSA"} {
		t.Run(alg, func(t *testing.T) {
			k, err := NewKey(alg)
			if err != nil {
				t.Fatal(err)
			}
			want := alg
			if alg == "" {
				want = DefaultAlgorithm
			}
			if k.Algorithm() != want {
				t.Errorf("Algorithm() = %q, want %q", k.Algorithm(), want)
			}
			raw, err := k.Sign(claims(), nil)
			if err != nil {
				t.Fatal(err)
			}
			jwks, err := token.ParseJWKS(k.JWKS())
			if err != nil {
				t.Fatalf("ParseJWKS(JWKS()): %v", err)
			}
			for name, keys := range map[string][]token.Key{"JWKS": jwks, "PublicKey": {k.PublicKey()}} {
				tok, err := verifier(t, keys...).Verify(context.Background(), raw)
				if err != nil {
					t.Fatalf("%s: Verify: %v", name, err)
				}
				if tok.Subject != "alice" || tok.Algorithm != want || tok.KeyID != k.ID() {
					t.Errorf("%s: verified sub=%q alg=%q kid=%q, want alice %q %q", name, tok.Subject, tok.Algorithm, tok.KeyID, want, k.ID())
				}
			}
		})
	}
}

func TestNewKeyRejectsUnknownAlgorithm(t *testing.T) {
	for _, alg := range []string{"HS256", "none", "rs256", "PS256"} {
		if _, err := NewKey(alg); err == nil {
			t.Errorf("NewKey(%q) succeeded", alg)
		}
	}
}

// An impostor shares the kid, so the verifier tries the real key and
// reports a bad signature, not an unknown key.
func TestImpostorFailsSignature(t *testing.T) {
	k, err := NewKey("ES256")
	if err != nil {
		t.Fatal(err)
	}
	imp, err := k.Impostor()
	if err != nil {
		t.Fatal(err)
	}
	if imp.ID() != k.ID() || imp.Algorithm() != k.Algorithm() {
		t.Fatalf("impostor kid/alg = %q/%q, want %q/%q", imp.ID(), imp.Algorithm(), k.ID(), k.Algorithm())
	}
	raw, err := imp.Sign(claims(), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = verifier(t, k.PublicKey()).Verify(context.Background(), raw)
	var terr *token.Error
	if !errors.As(err, &terr) || terr.Code != token.BadSignature {
		t.Fatalf("Verify(impostor token) = %v, want %s", err, token.BadSignature)
	}
}

func decode(t *testing.T, seg string) map[string]json.RawMessage {
	t.Helper()
	data, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// The payload holds the claims exactly as given: json.Number literals are
// kept, nothing is added.
func TestSignKeepsClaimsAsGiven(t *testing.T) {
	k, err := NewKey("EdDSA")
	if err != nil {
		t.Fatal(err)
	}
	in := map[string]any{
		"big":    json.Number("9007199254740993"),
		"frac":   json.Number("1.50"),
		"nested": map[string]any{"list": []any{"a", json.Number("2")}},
	}
	raw, err := k.Sign(in, nil)
	if err != nil {
		t.Fatal(err)
	}
	payload := decode(t, strings.Split(raw, ".")[1])
	want := map[string]string{
		"big":    "9007199254740993",
		"frac":   "1.50",
		"nested": `{"list":["a",2]}`,
	}
	if len(payload) != len(want) {
		t.Errorf("payload has %d claims, want %d: %v", len(payload), len(want), payload)
	}
	for name, lit := range want {
		if string(payload[name]) != lit {
			t.Errorf("claim %s = %s, want %s", name, payload[name], lit)
		}
	}
}

func TestSignHeader(t *testing.T) {
	k, err := NewKey("")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		extra map[string]any
		want  map[string]string // member → JSON; "" = absent
	}{
		{"default", nil, map[string]string{"alg": `"RS256"`, "typ": `"JWT"`, "kid": `"` + k.ID() + `"`}},
		{"added", map[string]any{"x5t": "abc"}, map[string]string{"x5t": `"abc"`, "kid": `"` + k.ID() + `"`}},
		{"replaced", map[string]any{"kid": "other", "typ": "at+jwt"}, map[string]string{"kid": `"other"`, "typ": `"at+jwt"`}},
		{"removed", map[string]any{"kid": nil}, map[string]string{"kid": "", "alg": `"RS256"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw, err := k.Sign(claims(), tt.extra)
			if err != nil {
				t.Fatal(err)
			}
			header := decode(t, strings.Split(raw, ".")[0])
			for name, lit := range tt.want {
				got, ok := header[name]
				if lit == "" {
					if ok {
						t.Errorf("header has %s = %s, want it absent", name, got)
					}
					continue
				}
				if string(got) != lit {
					t.Errorf("header %s = %s, want %s", name, got, lit)
				}
			}
		})
	}
}

func BenchmarkSignRS256(b *testing.B) {
	k, err := NewKey("RS256")
	if err != nil {
		b.Fatal(err)
	}
	c := claims()
	for b.Loop() {
		if _, err := k.Sign(c, nil); err != nil {
			b.Fatal(err)
		}
	}
}
