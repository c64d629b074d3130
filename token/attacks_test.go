package token

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
)

// One test per attack in jwt-attacks.md, named after its section. Tokens
// are signed with real keys; broken ones are built by encoding segments.

// attack is a token and the code Verify must answer with.
type attack struct {
	name  string
	token string
	keys  []Key // default: the RSA test key as "k1"
	want  Code
}

func runAttacks(t *testing.T, attacks []attack) {
	t.Helper()
	for _, a := range attacks {
		t.Run(a.name, func(t *testing.T) {
			keys := a.keys
			if keys == nil {
				keys = []Key{publicKey("k1", testRSAKey())}
			}
			tok, err := testVerifier(t, keys...).Verify(context.Background(), a.token)
			if got := code(err); got != a.want {
				t.Fatalf("got %s (%v), want %s", got, err, a.want)
			}
			if (tok == nil) == (a.want == "ok") {
				t.Fatalf("token %v with error %v", tok, err)
			}
		})
	}
}

func signRS256(t testing.TB, claims map[string]any) string {
	return mint(t, testRSAKey(), map[string]any{"alg": "RS256", "kid": "k1"}, claims)
}

// withHeader mints an RS256 token with extra header members.
func withHeader(t testing.TB, extra map[string]any) string {
	h := map[string]any{"alg": "RS256", "kid": "k1"}
	for k, v := range extra {
		h[k] = v
	}
	return mint(t, testRSAKey(), h, validClaims())
}

// rawToken encodes header and payload JSON as given and signs them with
// the RSA test key (RS256).
func rawToken(t testing.TB, header, payload string) string {
	input := b64([]byte(header)) + "." + b64([]byte(payload))
	return input + "." + sign(t, "RS256", testRSAKey(), input)
}

func TestA1_alg_none(t *testing.T) {
	claims := segment(t, validClaims())
	var attacks []attack
	for _, alg := range []string{"none", "None", "NONE", "nOnE"} {
		hdr := segment(t, map[string]any{"alg": alg, "kid": "k1"})
		attacks = append(attacks,
			attack{name: alg + "_empty_signature", token: hdr + "." + claims + ".", want: Malformed},
			attack{name: alg + "_with_signature", token: hdr + "." + claims + "." + b64([]byte("sig")), want: UnsupportedAlg},
			attack{name: alg + "_missing_signature_segment", token: hdr + "." + claims, want: Malformed},
		)
	}
	valid := signRS256(t, validClaims())
	attacks = append(attacks, attack{
		name:  "RS256_empty_signature",
		token: valid[:strings.LastIndexByte(valid, '.')+1],
		want:  Malformed,
	})
	runAttacks(t, attacks)
}

func TestA2_hs256_with_rsa_public_key(t *testing.T) {
	// The attacker HMACs with the RSA public key's bytes as the secret,
	// in every encoding a confused verifier might use.
	pub := &testRSAKey().PublicKey
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	secrets := map[string][]byte{
		"pem":   pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}),
		"der":   der,
		"n":     pub.N.Bytes(),
		"empty": nil,
	}
	var attacks []attack
	for name, secret := range secrets {
		input := segment(t, map[string]any{"alg": "HS256", "kid": "k1"}) + "." + segment(t, validClaims())
		mac := hmac.New(sha256.New, secret)
		mac.Write([]byte(input))
		attacks = append(attacks, attack{name: name, token: input + "." + b64(mac.Sum(nil)), want: UnsupportedAlg})
	}
	runAttacks(t, attacks)
}

func TestA3_alg_not_allowed_for_key(t *testing.T) {
	rsaKey, p256, p384 := testRSAKey(), testP256Key(), testP384Key()
	runAttacks(t, []attack{{
		// Same RSA key, other padding: the key's alg forbids it.
		name:  "PS256_with_RS256_key",
		token: mint(t, rsaKey, map[string]any{"alg": "PS256", "kid": "k1"}, validClaims()),
		keys:  []Key{{ID: "k1", Public: &rsaKey.PublicKey, Algorithm: "RS256"}},
		want:  AlgNotAllowed,
	}, {
		name:  "RS512_with_RS256_key",
		token: mint(t, rsaKey, map[string]any{"alg": "RS512", "kid": "k1"}, validClaims()),
		keys:  []Key{{ID: "k1", Public: &rsaKey.PublicKey, Algorithm: "RS256"}},
		want:  AlgNotAllowed,
	}, {
		// A key without alg fits any algorithm of its type (Entra).
		name:  "PS256_with_RSA_key_without_alg",
		token: mint(t, rsaKey, map[string]any{"alg": "PS256", "kid": "k1"}, validClaims()),
		want:  "ok",
	}, {
		name:  "ES256_with_P384_key",
		token: mint(t, p256, map[string]any{"alg": "ES256", "kid": "k1"}, validClaims()),
		keys:  []Key{publicKey("k1", p384)},
		want:  AlgNotAllowed,
	}, {
		name:  "RS256_with_EC_key",
		token: signRS256(t, validClaims()),
		keys:  []Key{publicKey("k1", p256)},
		want:  AlgNotAllowed,
	}, {
		name:  "EdDSA_with_RSA_key",
		token: mint(t, testEdKey(), map[string]any{"alg": "EdDSA", "kid": "k1"}, validClaims()),
		want:  AlgNotAllowed,
	}})
}

func TestA4_unsupported_algorithms(t *testing.T) {
	claims := validClaims()
	runAttacks(t, []attack{
		{name: "ES256K", token: rawToken(t, `{"alg":"ES256K","kid":"k1"}`, `{}`), want: UnsupportedAlg},
		{name: "RS1", token: rawToken(t, `{"alg":"RS1","kid":"k1"}`, `{}`), want: UnsupportedAlg},
		{name: "lower_case_rs256", token: rawToken(t, `{"alg":"rs256","kid":"k1"}`, `{}`), want: UnsupportedAlg},
		{name: "HS512", token: rawToken(t, `{"alg":"HS512"}`, `{}`), want: UnsupportedAlg},
		{name: "alg_missing", token: rawToken(t, `{"kid":"k1"}`, `{}`), want: Malformed},
		{name: "alg_number", token: rawToken(t, `{"alg":256}`, `{}`), want: Malformed},
		{name: "alg_null", token: rawToken(t, `{"alg":null}`, `{}`), want: Malformed},
		{name: "alg_array", token: rawToken(t, `{"alg":["RS256"]}`, `{}`), want: Malformed},
		// Malformed claims come before an unknown alg (check order).
		{name: "unknown_alg_and_bad_claims", token: rawToken(t, `{"alg":"XX"}`, `{"exp":"soon"}`), want: Malformed},
		{name: "valid", token: signRS256(t, claims), want: "ok"},
	})
}

func TestB1_no_kid_tries_every_fitting_key(t *testing.T) {
	other, signer := testRSAKey2(), testRSAKey()
	noKid := mint(t, signer, map[string]any{"alg": "RS256"}, validClaims())
	runAttacks(t, []attack{{
		name:  "second_key_verifies",
		token: noKid,
		keys:  []Key{publicKey("a", other), publicKey("b", testP256Key()), publicKey("c", signer)},
		want:  "ok",
	}, {
		name:  "no_key_verifies",
		token: noKid,
		keys:  []Key{publicKey("a", other)},
		want:  BadSignature,
	}, {
		name:  "no_key_of_the_type",
		token: noKid,
		keys:  []Key{publicKey("a", testP256Key())},
		want:  UnknownKID,
	}, {
		name:  "kid_token_and_key_without_kid",
		token: signRS256(t, validClaims()),
		keys:  []Key{publicKey("", signer)},
		want:  "ok",
	}})
}

func TestB2_unknown_kid_never_falls_back(t *testing.T) {
	signer := testRSAKey()
	runAttacks(t, []attack{{
		// The key that would verify has another kid: it is not tried.
		name:  "other_kid_would_verify",
		token: mint(t, signer, map[string]any{"alg": "RS256", "kid": "nope"}, validClaims()),
		keys:  []Key{publicKey("k1", signer)},
		want:  UnknownKID,
	}, {
		name:  "path_traversal_kid",
		token: mint(t, signer, map[string]any{"alg": "RS256", "kid": "../../../../dev/null"}, validClaims()),
		want:  UnknownKID,
	}, {
		name:  "sql_kid",
		token: mint(t, signer, map[string]any{"alg": "RS256", "kid": "x' UNION SELECT 'k1"}, validClaims()),
		want:  UnknownKID,
	}, {
		name:  "kid_differs_in_case",
		token: mint(t, signer, map[string]any{"alg": "RS256", "kid": "K1"}, validClaims()),
		want:  UnknownKID,
	}})
}

func TestB2_unknown_kid_refreshes_once(t *testing.T) {
	signer := testRSAKey()
	ctx := context.Background()
	tok := mint(t, signer, map[string]any{"alg": "RS256", "kid": "new"}, validClaims())

	// The new key appears after a refresh: one refresh, then valid.
	src := &countingKeys{before: []Key{publicKey("old", testRSAKey2())}, after: []Key{publicKey("new", signer)}}
	v, err := NewVerifier(Config{Keys: src, Now: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Fatalf("after refresh: %v", err)
	}
	if src.refreshCalls != 1 {
		t.Fatalf("%d refreshes, want 1", src.refreshCalls)
	}

	// Still unknown after the refresh: unknown_kid, one refresh.
	src = &countingKeys{before: []Key{publicKey("old", signer)}, after: []Key{publicKey("old", signer)}}
	v, _ = NewVerifier(Config{Keys: src, Now: fixedNow})
	if _, err := v.Verify(ctx, tok); code(err) != UnknownKID {
		t.Fatalf("got %v, want unknown_kid", err)
	}
	if src.refreshCalls != 1 {
		t.Fatalf("%d refreshes, want 1", src.refreshCalls)
	}

	// A known kid with a bad signature causes no refresh.
	src = &countingKeys{before: []Key{publicKey("new", testRSAKey2())}}
	v, _ = NewVerifier(Config{Keys: src, Now: fixedNow})
	if _, err := v.Verify(ctx, tok); code(err) != BadSignature {
		t.Fatalf("got %v, want bad_signature", err)
	}
	if src.refreshCalls != 0 {
		t.Fatalf("%d refreshes, want 0", src.refreshCalls)
	}
}

func TestB3_header_keys_are_never_used(t *testing.T) {
	attacker := mustEC(testP256Key().Curve)
	attackerJWK := map[string]any{
		"kty": "EC", "crv": "P-256",
		"x": b64(attacker.X.FillBytes(make([]byte, 32))),
		"y": b64(attacker.Y.FillBytes(make([]byte, 32))),
	}
	der, err := x509.MarshalPKIXPublicKey(&attacker.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	var attacks []attack
	for name, extra := range map[string]map[string]any{
		"jwk": {"jwk": attackerJWK},
		"jku": {"jku": "https://attacker.example/jwks.json"},
		"x5u": {"x5u": "https://attacker.example/cert.pem"},
		"x5c": {"x5c": []any{b64(der)}},
	} {
		h := map[string]any{"alg": "ES256", "kid": "k1"}
		for k, v := range extra {
			h[k] = v
		}
		// Signed by the attacker, naming the real key's kid.
		attacks = append(attacks, attack{
			name:  name,
			token: mint(t, attacker, h, validClaims()),
			keys:  []Key{publicKey("k1", testP256Key())},
			want:  BadSignature,
		})
		// The members themselves do no harm on a token signed by the real key.
		attacks = append(attacks, attack{
			name:  name + "_on_a_genuine_token",
			token: mint(t, testP256Key(), h, validClaims()),
			keys:  []Key{publicKey("k1", testP256Key())},
			want:  "ok",
		})
	}
	runAttacks(t, attacks)
}

func TestB4_keys_not_meant_for_signing(t *testing.T) {
	pub := &testRSAKey().PublicKey
	tok := signRS256(t, validClaims())
	runAttacks(t, []attack{
		{name: "use_enc", token: tok, keys: []Key{{ID: "k1", Public: pub, Use: "enc"}}, want: AlgNotAllowed},
		{name: "key_ops_encrypt", token: tok, keys: []Key{{ID: "k1", Public: pub, Ops: []string{"encrypt"}}}, want: AlgNotAllowed},
		{name: "key_ops_empty", token: tok, keys: []Key{{ID: "k1", Public: pub, Ops: []string{}}}, want: AlgNotAllowed},
		{name: "use_sig", token: tok, keys: []Key{{ID: "k1", Public: pub, Use: "sig"}}, want: "ok"},
		{name: "key_ops_verify", token: tok, keys: []Key{{ID: "k1", Public: pub, Ops: []string{"sign", "verify"}}}, want: "ok"},
	})
}

func TestB6_weak_keys(t *testing.T) {
	weak := mustRSA(1024)
	runAttacks(t, []attack{{
		name:  "rsa_1024",
		token: mint(t, weak, map[string]any{"alg": "RS256", "kid": "k1"}, validClaims()),
		keys:  []Key{publicKey("k1", weak)},
		want:  AlgNotAllowed,
	}, {
		name:  "rsa_exponent_1",
		token: signRS256(t, validClaims()),
		keys:  []Key{{ID: "k1", Public: &rsa.PublicKey{N: testRSAKey().N, E: 1}}},
		want:  AlgNotAllowed,
	}})
}

// ecdsaToken signs an ES256 token and returns its signing input, r and s.
func ecdsaToken(t *testing.T, priv *ecdsa.PrivateKey) (string, *big.Int, *big.Int) {
	input := segment(t, map[string]any{"alg": "ES256", "kid": "k1"}) + "." + segment(t, validClaims())
	d := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, priv, d[:])
	if err != nil {
		t.Fatal(err)
	}
	return input, r, s
}

func rs(r, s *big.Int) string {
	return b64(append(r.FillBytes(make([]byte, 32)), s.FillBytes(make([]byte, 32))...))
}

func TestC1_ecdsa_signature_encoding(t *testing.T) {
	priv := testP256Key()
	keys := []Key{publicKey("k1", priv)}
	input, r, s := ecdsaToken(t, priv)
	n := priv.Curve.Params().N
	der, err := asn1.Marshal(struct{ R, S *big.Int }{r, s})
	if err != nil {
		t.Fatal(err)
	}
	zero := new(big.Int)
	runAttacks(t, []attack{
		{name: "valid", token: input + "." + rs(r, s), keys: keys, want: "ok"},
		{name: "psychic_r0_s0", token: input + "." + rs(zero, zero), keys: keys, want: BadSignature},
		{name: "r_is_n", token: input + "." + rs(n, s), keys: keys, want: BadSignature},
		{name: "s_is_n", token: input + "." + rs(r, n), keys: keys, want: BadSignature},
		{name: "r_plus_n", token: input + "." + b64(append(new(big.Int).Add(r, n).FillBytes(make([]byte, 33)), s.FillBytes(make([]byte, 32))...)), keys: keys, want: BadSignature},
		{name: "der_instead_of_r_s", token: input + "." + b64(der), keys: keys, want: BadSignature},
		{name: "trailing_zero", token: input + "." + b64(append(append(r.FillBytes(make([]byte, 32)), s.FillBytes(make([]byte, 32))...), 0)), keys: keys, want: BadSignature},
		// C2: (r, n-s) is as valid as (r, s); tokens are not byte-unique.
		{name: "high_s_is_valid", token: input + "." + rs(r, new(big.Int).Sub(n, s)), keys: keys, want: "ok"},
	})
}

func TestC3_eddsa_signature_length(t *testing.T) {
	priv := testEdKey()
	keys := []Key{publicKey("k1", priv)}
	tok := mint(t, priv, map[string]any{"alg": "EdDSA", "kid": "k1"}, validClaims())
	input, sig, _ := strings.Cut(tok[strings.IndexByte(tok, '.')+1:], ".")
	input = tok[:strings.IndexByte(tok, '.')] + "." + input
	raw, _ := base64url.DecodeString(sig)
	runAttacks(t, []attack{
		{name: "valid", token: tok, keys: keys, want: "ok"},
		{name: "truncated", token: input + "." + b64(raw[:63]), keys: keys, want: BadSignature},
		{name: "extended", token: input + "." + b64(append(raw, 0)), keys: keys, want: BadSignature},
	})
}

func TestC4_rsa_pss_salt_length(t *testing.T) {
	priv := testRSAKey()
	input := segment(t, map[string]any{"alg": "PS256", "kid": "k1"}) + "." + segment(t, validClaims())
	d := sha256.Sum256([]byte(input))
	var attacks []attack
	for name, salt := range map[string]int{"salt_max": rsa.PSSSaltLengthAuto, "salt_20": 20, "salt_32": 32, "salt_64": 64} {
		sig, err := rsa.SignPSS(rand.Reader, priv, crypto.SHA256, d[:], &rsa.PSSOptions{SaltLength: salt})
		if err != nil {
			t.Fatal(err)
		}
		want := Code(BadSignature)
		if salt == 32 { // RFC 7518 §3.5: salt as long as the hash
			want = "ok"
		}
		attacks = append(attacks, attack{name: name, token: input + "." + b64(sig), want: want})
	}
	runAttacks(t, attacks)
}

func TestD1_compact_serialization(t *testing.T) {
	valid := signRS256(t, validClaims())
	h, rest, _ := strings.Cut(valid, ".")
	p, s, _ := strings.Cut(rest, ".")
	// The payload's last character carries unused bits when its length is
	// not a multiple of 3; flip one of them for a non-canonical spelling.
	nonCanonical := func(seg string) string {
		for len(seg)%4 == 0 {
			t.Skip("segment has no unused bits")
		}
		last := strings.IndexByte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", seg[len(seg)-1])
		return seg[:len(seg)-1] + string("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[last^1])
	}
	runAttacks(t, []attack{
		{name: "valid", token: valid, want: "ok"},
		{name: "two_segments", token: h + "." + p, want: Malformed},
		{name: "four_segments", token: valid + "." + s, want: Malformed},
		{name: "six_segments", token: valid + ".." + s + ".x", want: Malformed},
		{name: "empty_header", token: "." + p + "." + s, want: Malformed},
		{name: "empty_payload", token: h + ".." + s, want: Malformed},
		{name: "padding", token: h + "." + p + "." + s + "==", want: Malformed},
		{name: "standard_alphabet", token: strings.NewReplacer("-", "+", "_", "/").Replace(valid) + "+", want: Malformed},
		{name: "space_inside", token: h + ". " + p + "." + s, want: Malformed},
		{name: "crlf_inside", token: h + "." + p[:10] + "\r\n" + p[10:] + "." + s, want: Malformed},
		{name: "leading_space", token: " " + valid, want: Malformed},
		{name: "trailing_newline", token: valid + "\n", want: Malformed},
		{name: "non_canonical_signature_bits", token: h + "." + p + "." + nonCanonical(s), want: Malformed},
		{name: "json_serialization", token: `{"payload":"` + p + `","protected":"` + h + `","signature":"` + s + `"}`, want: Malformed},
		{name: "modified_payload", token: h + "." + segment(t, map[string]any{"iss": "https://issuer.example", "aud": "api://orders", "sub": "admin"}) + "." + s, want: BadSignature},
	})
}

func TestD2_size_limits(t *testing.T) {
	big := validClaims()
	big["pad"] = strings.Repeat("x", 16<<10) // a 16 KiB claim: accepted
	huge := validClaims()
	huge["pad"] = strings.Repeat("x", 64<<10)
	runAttacks(t, []attack{
		{name: "16KiB_claim", token: signRS256(t, big), want: "ok"},
		{name: "over_64KiB", token: signRS256(t, huge), want: Malformed},
		{name: "million_dots", token: strings.Repeat(".", 1<<20), want: Malformed},
		{name: "64KiB_of_dots", token: strings.Repeat(".", 60<<10), want: Malformed},
		{name: "deep_nesting", token: rawToken(t, `{"alg":"RS256","kid":"k1"}`, `{"a":`+strings.Repeat("[", 100)+strings.Repeat("]", 100)+`}`), want: Malformed},
		{name: "nesting_within_limit", token: rawToken(t, `{"alg":"RS256","kid":"k1"}`, `{"iss":"https://issuer.example","aud":"api://orders","a":`+strings.Repeat("[", 60)+strings.Repeat("]", 60)+`}`), want: "ok"},
	})
}

func TestD3_jwe_is_never_accepted(t *testing.T) {
	runAttacks(t, []attack{
		{name: "five_segments", token: segment(t, map[string]any{"alg": "RSA-OAEP", "enc": "A256GCM"}) + ".a.b.c.d", want: Malformed},
		{name: "enc_in_jws_header", token: withHeader(t, map[string]any{"enc": "A256GCM"}), want: Malformed},
	})
}

func TestD4_nested_jwt(t *testing.T) {
	runAttacks(t, []attack{
		{name: "cty_JWT", token: withHeader(t, map[string]any{"cty": "JWT"}), want: Malformed},
		{name: "cty_jwt", token: withHeader(t, map[string]any{"cty": "jwt"}), want: Malformed},
		{name: "cty_other", token: withHeader(t, map[string]any{"cty": "json"}), want: "ok"},
	})
}

func TestD5_crit(t *testing.T) {
	runAttacks(t, []attack{
		{name: "crit_exp", token: withHeader(t, map[string]any{"crit": []any{"exp"}, "exp": 1}), want: Malformed},
		{name: "crit_empty", token: withHeader(t, map[string]any{"crit": []any{}}), want: Malformed},
	})
}

func TestD6_b64(t *testing.T) {
	runAttacks(t, []attack{
		{name: "b64_false_in_crit", token: withHeader(t, map[string]any{"b64": false, "crit": []any{"b64"}}), want: Malformed},
		{name: "b64_false", token: withHeader(t, map[string]any{"b64": false}), want: Malformed},
		{name: "b64_true", token: withHeader(t, map[string]any{"b64": true}), want: Malformed},
		{name: "zip", token: withHeader(t, map[string]any{"zip": "DEF"}), want: Malformed},
	})
}

func TestD7_json_differentials(t *testing.T) {
	const hdr = `{"alg":"RS256","kid":"k1"}`
	const good = `"aud":"api://orders","exp":1700003600`
	runAttacks(t, []attack{
		{name: "duplicate_alg", token: rawToken(t, `{"alg":"RS256","alg":"none","kid":"k1"}`, `{"iss":"https://issuer.example",`+good+`}`), want: Malformed},
		{name: "duplicate_iss", token: rawToken(t, hdr, `{"iss":"https://issuer.example","iss":"https://evil.example",`+good+`}`), want: Malformed},
		{name: "duplicate_via_escape", token: rawToken(t, hdr, `{"iss":"https://issuer.example","\u0069ss":"https://evil.example",`+good+`}`), want: Malformed},
		{name: "duplicate_nested", token: rawToken(t, hdr, `{"iss":"https://issuer.example",`+good+`,"x":{"a":1,"a":2}}`), want: Malformed},
		// Member names are case-sensitive: "ISS" is not iss.
		{name: "upper_case_iss", token: rawToken(t, hdr, `{"ISS":"https://issuer.example",`+good+`}`), want: WrongIssuer},
		{name: "invalid_utf8", token: rawToken(t, hdr, "{\"iss\":\"https://issuer.example\",\"name\":\"\xff\","+good+"}"), want: Malformed},
		{name: "lone_surrogate", token: rawToken(t, hdr, `{"iss":"https://issuer.example","name":"\ud800",`+good+`}`), want: Malformed},
		{name: "array_payload", token: rawToken(t, hdr, `["iss"]`), want: Malformed},
		{name: "trailing_data", token: rawToken(t, hdr, `{"iss":"https://issuer.example",`+good+`} x`), want: Malformed},
		{name: "two_objects", token: rawToken(t, hdr, `{"iss":"https://issuer.example",`+good+`}{}`), want: Malformed},
		{name: "trailing_comma", token: rawToken(t, hdr, `{"iss":"https://issuer.example",`+good+`,}`), want: Malformed},
		{name: "crlf_whitespace_is_json", token: rawToken(t, "{\"alg\":\"RS256\",\r\n \"kid\":\"k1\"}", "{\"iss\":\"https://issuer.example\",\r\n"+good+"}"), want: "ok"},
		{name: "escaped_values", token: rawToken(t, hdr, `{"iss":"https:\/\/issuer.example",`+good+`}`), want: "ok"},
		{name: "iss_bool", token: rawToken(t, hdr, `{"iss":true,`+good+`}`), want: Malformed},
		{name: "aud_number", token: rawToken(t, hdr, `{"iss":"https://issuer.example","aud":1}`), want: Malformed},
		{name: "aud_mixed_array", token: rawToken(t, hdr, `{"iss":"https://issuer.example","aud":["api://orders",1]}`), want: Malformed},
		{name: "aud_null", token: rawToken(t, hdr, `{"iss":"https://issuer.example","aud":null}`), want: Malformed},
		{name: "tid_number", token: rawToken(t, hdr, `{"iss":"https://issuer.example","tid":1,`+good+`}`), want: Malformed},
		{name: "azp_object", token: rawToken(t, hdr, `{"iss":"https://issuer.example","azp":{},`+good+`}`), want: Malformed},
		{name: "exp_string", token: rawToken(t, hdr, `{"iss":"https://issuer.example","aud":"api://orders","exp":"1700003600"}`), want: Malformed},
		{name: "exp_negative", token: rawToken(t, hdr, `{"iss":"https://issuer.example","aud":"api://orders","exp":-1}`), want: Malformed},
		{name: "exp_2e206", token: rawToken(t, hdr, `{"iss":"https://issuer.example","aud":"api://orders","exp":2.001e+206}`), want: Malformed},
		{name: "exp_2_pow_63", token: rawToken(t, hdr, `{"iss":"https://issuer.example","aud":"api://orders","exp":9223372036854775808}`), want: Malformed},
		{name: "exp_max_int64", token: rawToken(t, hdr, `{"iss":"https://issuer.example","aud":"api://orders","exp":9223372036854775807}`), want: "ok"},
		{name: "exp_fraction", token: rawToken(t, hdr, `{"iss":"https://issuer.example","aud":"api://orders","exp":1699999940.999}`), want: "ok"},
		{name: "exp_fraction_past", token: rawToken(t, hdr, `{"iss":"https://issuer.example","aud":"api://orders","exp":1699999939.999}`), want: Expired},
		{name: "exp_exponent", token: rawToken(t, hdr, `{"iss":"https://issuer.example","aud":"api://orders","exp":1.7000036e9}`), want: "ok"},
		// Envoy's not-yet-valid token: nbf = 2^63-1 must not round to 2^63.
		{name: "nbf_max_int64", token: rawToken(t, hdr, `{"iss":"https://issuer.example","aud":"api://orders","nbf":9223372036854775807}`), want: NotYetValid},
	})
}

func TestE1_times_and_skew(t *testing.T) {
	now := testNow.Unix()
	with := func(name string, v int64) string {
		c := validClaims()
		c[name] = v
		return signRS256(t, c)
	}
	runAttacks(t, []attack{
		{name: "exp_at_skew_edge", token: with("exp", now-60), want: "ok"},
		{name: "exp_past_skew", token: with("exp", now-61), want: Expired},
		{name: "exp_zero", token: with("exp", 0), want: Expired},
		{name: "nbf_at_skew_edge", token: with("nbf", now+60), want: "ok"},
		{name: "nbf_past_skew", token: with("nbf", now+61), want: NotYetValid},
		{name: "iat_at_skew_edge", token: with("iat", now+60), want: "ok"},
		{name: "iat_in_future", token: with("iat", now+61), want: NotYetValid},
		{name: "no_times", token: signRS256(t, map[string]any{"iss": "https://issuer.example", "aud": "api://orders"}), want: "ok"},
	})

	// A negative Skew allows none; a large one forgives old tokens.
	for _, tc := range []struct {
		skew   int64
		offset int64
		want   Code
	}{
		{-1, 0, "ok"}, {-1, 1, Expired}, {3600, 3600, "ok"}, {3600, 3601, Expired},
	} {
		v, err := NewVerifier(Config{Keys: StaticKeys{publicKey("k1", testRSAKey())}, Skew: secondsDuration(tc.skew), Now: fixedNow})
		if err != nil {
			t.Fatal(err)
		}
		_, err = v.Verify(context.Background(), with("exp", now-tc.offset))
		if got := code(err); got != tc.want {
			t.Errorf("skew %d, exp now-%d: got %s (%v), want %s", tc.skew, tc.offset, got, err, tc.want)
		}
	}
}

func TestE2_audience(t *testing.T) {
	with := func(aud any) string {
		c := validClaims()
		c["aud"] = aud
		if aud == nil {
			delete(c, "aud")
		}
		return signRS256(t, c)
	}
	runAttacks(t, []attack{
		{name: "string", token: with("api://orders"), want: "ok"},
		{name: "array_any_match", token: with([]any{"other", "api://orders"}), want: "ok"},
		{name: "array_no_match", token: with([]any{"other", "more"}), want: WrongAudience},
		{name: "empty_array", token: with([]any{}), want: WrongAudience},
		{name: "missing", token: with(nil), want: WrongAudience},
		{name: "trailing_slash", token: with("api://orders/"), want: "ok"},
		{name: "case_differs", token: with("API://orders"), want: WrongAudience},
		{name: "prefix_only", token: with("api://order"), want: WrongAudience},
		{name: "graph", token: with("https://graph.microsoft.com"), want: WrongAudience},
	})
}

func TestE3_issuer_is_exact(t *testing.T) {
	with := func(iss any) string {
		c := validClaims()
		c["iss"] = iss
		if iss == nil {
			delete(c, "iss")
		}
		return signRS256(t, c)
	}
	runAttacks(t, []attack{
		{name: "exact", token: with("https://issuer.example"), want: "ok"},
		{name: "trailing_slash", token: with("https://issuer.example/"), want: WrongIssuer},
		{name: "case", token: with("https://ISSUER.example"), want: WrongIssuer},
		{name: "missing", token: with(nil), want: WrongIssuer},
		{name: "empty", token: with(""), want: WrongIssuer},
	})
}

// TestCheckOrder proves that the first failed check in the contract's
// order is the one reported, and that nothing in the claims counts before
// the signature verifies.
func TestCheckOrder(t *testing.T) {
	bad := func(claims map[string]any) string {
		tok := signRS256(t, claims)
		return tok[:len(tok)-4] + "AAAA" // wrong signature, same length
	}
	everythingWrong := map[string]any{"iss": "https://evil.example", "aud": "other", "exp": 1, "nbf": 1 << 40}
	wrongTimesAndAud := map[string]any{"iss": "https://issuer.example", "aud": "other", "exp": 1, "nbf": 1 << 40}
	nbfAndAud := map[string]any{"iss": "https://issuer.example", "aud": "other", "nbf": 1 << 40}
	runAttacks(t, []attack{
		{name: "bad_signature_before_claims", token: bad(everythingWrong), want: BadSignature},
		{name: "unknown_kid_before_signature", token: mint(t, testRSAKey(), map[string]any{"alg": "RS256", "kid": "zz"}, everythingWrong), want: UnknownKID},
		{name: "alg_not_allowed_before_signature", token: bad(everythingWrong), keys: []Key{{ID: "k1", Public: &testRSAKey().PublicKey, Algorithm: "PS256"}}, want: AlgNotAllowed},
		{name: "wrong_issuer_before_times", token: signRS256(t, everythingWrong), want: WrongIssuer},
		{name: "expired_before_not_yet_valid", token: signRS256(t, wrongTimesAndAud), want: Expired},
		{name: "not_yet_valid_before_audience", token: signRS256(t, nbfAndAud), want: NotYetValid},
	})
}
