package token

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// seedTokens adds the published vectors' tokens to a fuzz corpus.
func seedTokens(f *testing.F) []string {
	var vectors []publicVector
	data, err := readTestdata("jwt-public-vectors.json")
	if err != nil {
		f.Fatal(err)
	}
	if err := json.Unmarshal(data, &vectors); err != nil {
		f.Fatal(err)
	}
	var tokens []string
	for _, v := range vectors {
		tokens = append(tokens, v.Token)
	}
	return append(tokens, "", ".", "..", "a.b.c", "e30.e30.e30", "e30.e30.", "a.b.c.d.e")
}

// checkError asserts what every rejection must be: an *Error with a known
// code and a one-line detail.
func checkError(t *testing.T, err error, codes ...Code) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v is %T, not *Error", err, err)
	}
	known := false
	for _, c := range codes {
		known = known || e.Code == c
	}
	if !known {
		t.Fatalf("code %q, want one of %v", e.Code, codes)
	}
	if e.Detail == "" || strings.ContainsAny(e.Detail, "\r\n") {
		t.Fatalf("detail %q is not one line", e.Detail)
	}
}

func FuzzParse(f *testing.F) {
	for _, tok := range seedTokens(f) {
		f.Add(tok)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		p, err := Parse(raw)
		if err != nil {
			checkError(t, err, Malformed, UnsupportedAlg)
			return
		}
		if len(raw) > MaxSize || p.Unverified.Raw != raw || p.alg == nil || p.alg.name != p.Unverified.Algorithm {
			t.Fatalf("inconsistent parse of %q: %+v", raw, p.Unverified)
		}
		// Strict base64url: the segments re-encode to exactly the input.
		segs := strings.Split(raw, ".")
		if len(segs) != 3 || p.signingInput != segs[0]+"."+segs[1] || b64(p.signature) != segs[2] {
			t.Fatalf("segments of %q do not round-trip", raw)
		}
		for _, d := range []date{p.exp, p.nbf, p.iat} {
			if d.set && d.sec < 0 {
				t.Fatalf("negative date %d", d.sec)
			}
		}
	})
}

func FuzzParseJWKS(f *testing.F) {
	var vectors []publicVector
	data, err := readTestdata("jwt-public-vectors.json")
	if err != nil {
		f.Fatal(err)
	}
	if err := json.Unmarshal(data, &vectors); err != nil {
		f.Fatal(err)
	}
	seen := map[string]bool{}
	for _, v := range vectors {
		if !seen[string(v.JWKS)] {
			seen[string(v.JWKS)] = true
			f.Add([]byte(v.JWKS))
		}
	}
	f.Add([]byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"","y":""}]}`))
	f.Add([]byte(`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		keys, skipped, err := ParseJWKSReport(data)
		if err != nil {
			if keys != nil {
				t.Fatalf("keys %v with error %v", keys, err)
			}
			return
		}
		if len(keys) == 0 || len(keys)+len(skipped) > MaxJWKSKeys {
			t.Fatalf("%d keys, %d skipped", len(keys), len(skipped))
		}
		for _, k := range keys {
			if err := checkPublicKey(k.Public); err != nil {
				t.Fatalf("kept a bad key: %v", err)
			}
		}
	})
}

// FuzzVerify checks the property the package exists for: nothing but a
// token its keys signed is ever valid.
func FuzzVerify(f *testing.F) {
	keys := StaticKeys{
		publicKey("rsa", testRSAKey()),
		publicKey("ec", testP256Key()),
		publicKey("ed", testEdKey()),
		publicKey("", testRSAKey2()),
	}
	signed := map[string]bool{}
	for _, tok := range []string{
		mint(f, testRSAKey(), map[string]any{"alg": "RS256", "kid": "rsa"}, validClaims()),
		mint(f, testRSAKey(), map[string]any{"alg": "PS384", "kid": "rsa"}, validClaims()),
		mint(f, testP256Key(), map[string]any{"alg": "ES256", "kid": "ec"}, validClaims()),
		mint(f, testEdKey(), map[string]any{"alg": "EdDSA", "kid": "ed"}, validClaims()),
		mint(f, testRSAKey2(), map[string]any{"alg": "RS512"}, validClaims()),
	} {
		signed[tok[:strings.LastIndexByte(tok, '.')]] = true
		f.Add(tok)
	}
	for _, tok := range seedTokens(f) {
		f.Add(tok)
	}
	v, err := NewVerifier(Config{Keys: keys, Now: func() time.Time { return testNow }})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		tok, err := v.Verify(t.Context(), raw)
		if err != nil {
			if tok != nil {
				t.Fatal("token with an error")
			}
			checkError(t, err, Malformed, UnsupportedAlg, UnknownKID, AlgNotAllowed, BadSignature,
				WrongIssuer, Expired, NotYetValid, WrongAudience)
			return
		}
		if !signed[raw[:strings.LastIndexByte(raw, '.')]] {
			t.Fatalf("accepted a token nobody signed: %q", raw)
		}
	})
}

// FuzzParseJSONObject compares the strict parser with encoding/json:
// whatever it accepts, encoding/json reads the same way.
func FuzzParseJSONObject(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"a":1}`, `{"a":"\u00e9\ud83d\ude00","b":[true,false,null,{"c":-1.5e3}]}`,
		`{"a":1,"a":2}`, `{"a":"\ud800"}`, "{\"a\":\"\xff\"}", `{"A":1,"a":2}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseJSONObject(s)
		if err != nil {
			return
		}
		d := json.NewDecoder(bytes.NewReader([]byte(s)))
		d.UseNumber()
		var want map[string]any
		if err := d.Decode(&want); err != nil {
			t.Fatalf("accepted %q, which encoding/json rejects: %v", s, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: got %#v, encoding/json reads %#v", s, got, want)
		}
	})
}
