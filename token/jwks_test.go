package token

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// jwk returns the public JWK of pub as a map, with extra members.
func jwk(t *testing.T, pub crypto.PublicKey, extra map[string]any) map[string]any {
	t.Helper()
	b, err := jose.JSONWebKey{Key: pub}.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for k, v := range extra {
		if v == nil {
			delete(m, k)
			continue
		}
		m[k] = v
	}
	return m
}

func jwksOf(t *testing.T, keys ...any) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// selfSigned returns a base64 (standard, as x5c has it) DER certificate
// for priv's public key.
func selfSigned(t *testing.T, priv crypto.Signer) string {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "accounts.accesscontrol.windows.net"},
		NotBefore:    testNow.Add(-time.Hour),
		NotAfter:     testNow.Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, priv.Public(), priv)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(der)
}

func TestParseJWKSKeys(t *testing.T) {
	rsaKey, p256, ed := testRSAKey(), testP256Key(), testEdKey()
	// Entra's v2 JWKS entry: no alg, x5t, x5c and an issuer template.
	entra := jwk(t, &rsaKey.PublicKey, map[string]any{
		"kid": "entra", "use": "sig",
		"x5c": []any{selfSigned(t, rsaKey)}, "issuer": v2Tmpl,
	})
	data := jwksOf(t,
		entra,
		jwk(t, &p256.PublicKey, map[string]any{"kid": "ec", "alg": "ES256", "key_ops": []any{"verify"}}),
		jwk(t, ed.Public(), map[string]any{"kid": "ed"}),
		jwk(t, &testRSAKey2().PublicKey, map[string]any{"kid": "enc", "use": "enc"}),
	)
	keys, skipped, err := ParseJWKSReport(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(skipped) != 0 {
		t.Fatalf("skipped %v", skipped)
	}
	want := []Key{
		{ID: "entra", Public: &rsaKey.PublicKey, Use: "sig", Issuer: v2Tmpl},
		{ID: "ec", Public: &p256.PublicKey, Algorithm: "ES256", Ops: []string{"verify"}},
		{ID: "ed", Public: ed.Public()},
		{ID: "enc", Public: &testRSAKey2().PublicKey, Use: "enc"},
	}
	if len(keys) != len(want) {
		t.Fatalf("got %d keys, want %d", len(keys), len(want))
	}
	for i, k := range keys {
		w := want[i]
		if k.ID != w.ID || k.Algorithm != w.Algorithm || k.Use != w.Use || k.Issuer != w.Issuer ||
			fmt.Sprint(k.Ops) != fmt.Sprint(w.Ops) || (w.Ops == nil) != (k.Ops == nil) {
			t.Errorf("key %d = %+v, want %+v", i, k, w)
		}
		if !k.Public.(interface{ Equal(crypto.PublicKey) bool }).Equal(w.Public) {
			t.Errorf("key %d: public key differs", i)
		}
	}
}

func TestParseJWKSSkipsUnusableKeys(t *testing.T) {
	rsaKey := testRSAKey()
	good := jwk(t, &rsaKey.PublicKey, map[string]any{"kid": "good"})
	weak := mustRSA(1024)
	offCurve := jwk(t, &testP256Key().PublicKey, nil)
	offCurve["y"] = offCurve["x"]
	private := jwk(t, &rsaKey.PublicKey, map[string]any{"kid": "private", "d": b64(rsaKey.D.Bytes())})

	for _, tc := range []struct {
		name   string
		key    any
		reason string // part of the skip reason; "" = kept
	}{
		{"oct", map[string]any{"kty": "oct", "k": "c2VjcmV0", "kid": "x"}, "symmetric"},
		{"unknown_kty", map[string]any{"kty": "AKP", "kid": "x"}, `kty "AKP" is not supported`},
		{"no_kty", map[string]any{"kid": "x", "n": "AQAB", "e": "AQAB"}, "kty is missing"},
		{"kty_number", map[string]any{"kty": 1}, "kty is a number"},
		{"not_an_object", "key", "not an object"},
		{"kid_number", jwk(t, &rsaKey.PublicKey, map[string]any{"kid": 7}), "kid is a number"},
		{"alg_array", jwk(t, &rsaKey.PublicKey, map[string]any{"alg": []any{"RS256"}}), "alg is an array"},
		{"key_ops_string", jwk(t, &rsaKey.PublicKey, map[string]any{"key_ops": "verify"}), "key_ops is a string"},
		{"issuer_bool", jwk(t, &rsaKey.PublicKey, map[string]any{"issuer": true}), "issuer is a bool"},
		{"rsa_1024", jwk(t, &weak.PublicKey, nil), "1024 bits"},
		{"rsa_even_exponent", jwk(t, &rsa.PublicKey{N: rsaKey.N, E: 65536}, nil), "exponent"},
		{"ec_off_curve", offCurve, "invalid key material"},
		{"ec_unknown_curve", jwk(t, &testP256Key().PublicKey, map[string]any{"crv": "secp256k1"}), "invalid key material"},
		{"okp_x25519", map[string]any{"kty": "OKP", "crv": "X25519", "x": b64(make([]byte, 32))}, "invalid key material"},
		{"x5c_of_another_key", jwk(t, &rsaKey.PublicKey, map[string]any{"x5c": []any{selfSigned(t, testRSAKey2())}}), "invalid key material"},
		{"x5c_not_base64", jwk(t, &rsaKey.PublicKey, map[string]any{"x5c": []any{"!!"}}), "invalid key material"},
		{"rsa_missing_e", jwk(t, &rsaKey.PublicKey, map[string]any{"e": nil}), "invalid key material"},
		{"private_key_members", private, ""},
		{"upper_case_member_names_ignored", map[string]any{"kty": "RSA", "N": good["n"], "E": good["e"]}, "invalid key material"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			keys, skipped, err := ParseJWKSReport(jwksOf(t, good, tc.key))
			if err != nil {
				t.Fatal(err)
			}
			if tc.reason == "" {
				if len(keys) != 2 || len(skipped) != 0 {
					t.Fatalf("got %d keys, skipped %v; want both kept", len(keys), skipped)
				}
				if _, ok := keys[1].Public.(*rsa.PublicKey); !ok {
					t.Fatalf("kept %T, want the public key", keys[1].Public)
				}
				return
			}
			if len(keys) != 1 || keys[0].ID != "good" {
				t.Fatalf("got keys %+v, want only the good one", keys)
			}
			if len(skipped) != 1 || skipped[0].Index != 1 || !strings.Contains(skipped[0].Reason, tc.reason) {
				t.Fatalf("skipped %v, want key #2 with %q", skipped, tc.reason)
			}
		})
	}
}

func TestParseJWKSRejectsSets(t *testing.T) {
	good := jwk(t, &testRSAKey().PublicKey, map[string]any{"kid": "good"})
	goodJSON, _ := json.Marshal(good)
	many := make([]any, MaxJWKSKeys+1)
	for i := range many {
		many[i] = good
	}
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "not a JSON object"},
		{"not_json", []byte("<html>"), "not a JSON object"},
		{"array", []byte(`[` + string(goodJSON) + `]`), "not a JSON object"},
		{"trailing_comma", []byte(`{"keys":[` + string(goodJSON) + `,]}`), "not a JSON object"},
		{"duplicate_keys_member", []byte(`{"keys":[],"keys":[` + string(goodJSON) + `]}`), "appears twice"},
		{"duplicate_member_in_key", []byte(`{"keys":[{"kty":"RSA","kty":"oct",` + string(goodJSON[1:]) + `]}`), "appears twice"},
		{"invalid_utf8", []byte("{\"keys\":[],\"x\":\"\xff\"}"), "UTF-8"},
		{"no_keys", []byte(`{"jwks":[]}`), `no "keys" member`},
		{"keys_object", []byte(`{"keys":{}}`), "not an array"},
		{"zero_keys", []byte(`{"keys":[]}`), "has no keys"},
		{"too_many_keys", jwksOf(t, many...), "at most 100"},
		{"too_large", append([]byte(`{"keys":[],"pad":"`+strings.Repeat("x", MaxJWKSSize)), `"}`...), "bytes"},
		{"only_unusable", jwksOf(t, map[string]any{"kty": "oct", "k": "c2VjcmV0"}), "symmetric"},
		{"only_encryption_keys", jwksOf(t, jwk(t, &testRSAKey().PublicKey, map[string]any{"use": "enc"})), "for other uses"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			keys, err := ParseJWKS(tc.data)
			if err == nil {
				t.Fatalf("accepted, with %d keys", len(keys))
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q lacks %q", err, tc.want)
			}
		})
	}
}

// TestParseJWKSRoundTrip proves that keys from ParseJWKS verify what
// their private halves sign, for every algorithm.
func TestParseJWKSRoundTrip(t *testing.T) {
	signers := []struct {
		alg  string
		priv crypto.Signer
	}{
		{"RS256", testRSAKey()}, {"RS384", testRSAKey()}, {"RS512", testRSAKey()},
		{"PS256", testRSAKey()}, {"PS384", testRSAKey()}, {"PS512", testRSAKey()},
		{"ES256", testP256Key()}, {"ES384", testP384Key()}, {"ES512", testP521Key()},
		{"EdDSA", testEdKey()},
	}
	for _, s := range signers {
		t.Run(s.alg, func(t *testing.T) {
			keys, err := ParseJWKS(jwksOf(t, jwk(t, s.priv.Public(), map[string]any{"kid": "k1", "alg": s.alg})))
			if err != nil {
				t.Fatal(err)
			}
			tok := mint(t, s.priv, map[string]any{"alg": s.alg, "kid": "k1"}, validClaims())
			if _, err := testVerifier(t, keys...).Verify(t.Context(), tok); err != nil {
				t.Fatal(err)
			}
		})
	}
}
