package token

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func TestParseJSONObject(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want map[string]any // nil = error
	}{
		{`{}`, map[string]any{}},
		{" \t\r\n{ \"a\" : 1 } \n", map[string]any{"a": json.Number("1")}},
		{`{"a":"x","b":true,"c":false,"d":null,"e":[1,"2",[]],"f":{"g":{}}}`, map[string]any{
			"a": "x", "b": true, "c": false, "d": nil,
			"e": []any{json.Number("1"), "2", []any{}}, "f": map[string]any{"g": map[string]any{}},
		}},
		{`{"n":-0.5e+10,"m":0,"k":1E2,"big":123456789012345678901234567890}`, map[string]any{
			"n": json.Number("-0.5e+10"), "m": json.Number("0"), "k": json.Number("1E2"),
			"big": json.Number("123456789012345678901234567890"),
		}},
		{`{"s":"\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00é"}`, map[string]any{"s": "\"\\/\b\f\n\r\té😀é"}},
		{`{"a\u0062":1}`, map[string]any{"ab": json.Number("1")}},
		{`{"A":1,"a":2}`, map[string]any{"A": json.Number("1"), "a": json.Number("2")}},

		{``, nil},
		{`[]`, nil},
		{`"x"`, nil},
		{`{"a":1,"a":1}`, nil},
		{`{"a":1,"\u0061":1}`, nil},
		{`{"a":{"b":1,"b":2}}`, nil},
		{`{"a":[{"b":1,"b":2}]}`, nil},
		{`{"a":1,}`, nil},
		{`{"a":[1,]}`, nil},
		{`{"a" 1}`, nil},
		{`{a:1}`, nil},
		{`{'a':1}`, nil},
		{`{"a":01}`, nil},
		{`{"a":1.}`, nil},
		{`{"a":.5}`, nil},
		{`{"a":+1}`, nil},
		{`{"a":-}`, nil},
		{`{"a":1e}`, nil},
		{`{"a":NaN}`, nil},
		{`{"a":Infinity}`, nil},
		{`{"a":tru}`, nil},
		{`{"a":nul}`, nil},
		{`{"a":"\x"}`, nil},
		{`{"a":"\u12"}`, nil},
		{`{"a":"\ud800"}`, nil},
		{`{"a":"\udc00"}`, nil},
		{`{"a":"\ud800\u0041"}`, nil},
		{"{\"a\":\"\t\"}", nil},
		{"{\"a\":\"\xff\"}", nil},
		{`{"a":"x"`, nil},
		{`{"a":"x}`, nil},
		{`{"a":1} {}`, nil},
		{`{"a":1}x`, nil},
		{`{"a":` + strings.Repeat("[", maxJSONDepth) + strings.Repeat("]", maxJSONDepth) + `}`, nil},
	} {
		got, err := parseJSONObject(tc.in)
		if tc.want == nil {
			if err == nil {
				t.Errorf("%q: parsed as %v, want an error", tc.in, got)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: got %#v, want %#v", tc.in, got, tc.want)
		}
	}
	// The deepest nesting allowed parses.
	deep := `{"a":` + strings.Repeat("[", maxJSONDepth-1) + strings.Repeat("]", maxJSONDepth-1) + `}`
	if _, err := parseJSONObject(deep); err != nil {
		t.Errorf("nesting %d: %v", maxJSONDepth, err)
	}
}

func TestNumericDate(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		err  bool
	}{
		{"0", 0, false},
		{"1700000000", 1700000000, false},
		{"1700000000.999999", 1700000000, false},
		{"0.5", 0, false},
		{"1.7e9", 1700000000, false},
		{"17E8", 1700000000, false},
		{"1.75e0", 1, false},
		{"170000000000e-2", 1700000000, false},
		{"1e-400", 0, false},
		{"0e99999999999999999999", 0, false},
		{"9223372036854775807", 9223372036854775807, false},
		{"9223372036854775807.9", 9223372036854775807, false},
		{"922337203685477580.7e1", 9223372036854775807, false},
		{"00000000000000000000001", 1, false},
		{"9223372036854775808", 0, true},
		{"1e19", 0, true},
		{"2.001e+206", 0, true},
		{"1e99999999999999999999", 0, true},
		{"-1", 0, true},
		{"-0", 0, true},
	} {
		got, err := numericDate(json.Number(tc.in))
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("numericDate(%s) = %d, %v; want %d, error %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestTrimInput(t *testing.T) {
	for in, want := range map[string]string{
		"abc":               "abc",
		"  abc \n":          "abc",
		"Bearer abc":        "abc",
		"bearer abc":        "abc",
		"BEARER   abc":      "abc",
		"\t Bearer abc\r\n": "abc",
		"Bearer\tabc":       "Bearer\tabc",
		"Bearerabc":         "Bearerabc",
		"Bearer":            "Bearer",
		"Bearer ":           "Bearer",
		"Basic abc":         "Basic abc",
		"Bearer Bearer abc": "Bearer abc",
	} {
		if got := TrimInput(in); got != want {
			t.Errorf("TrimInput(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseFillsToken(t *testing.T) {
	claims := validClaims()
	claims["aud"] = []any{"a", "api://orders"}
	claims["azp"] = "client"
	claims["tid"] = tenantA
	claims["exp"] = json.Number("1700003600.5")
	raw := mint(t, testRSAKey(), map[string]any{"alg": "RS256", "kid": "k1", "typ": "JWT"}, claims)
	p, err := Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	u := p.Unverified
	if u.Raw != raw || u.Algorithm != "RS256" || u.KeyID != "k1" || u.Issuer != "https://issuer.example" ||
		u.Subject != "user-1" || u.Presenter != "client" || u.TenantID != tenantA || !reflect.DeepEqual(u.Audience, []string{"a", "api://orders"}) {
		t.Fatalf("unexpected token %+v", u)
	}
	if u.Claims["exp"] != json.Number("1700003600.5") || u.Header["typ"] != "JWT" {
		t.Fatalf("claims %v, header %v", u.Claims, u.Header)
	}
	if !p.exp.set || p.exp.sec != 1700003600 {
		t.Fatalf("exp = %+v", p.exp)
	}
	if want := strings.Split(raw, ".")[1]; u.Payload() != want {
		t.Fatalf("Payload() = %q, want %q", u.Payload(), want)
	}

	// The verified token carries the same values.
	tok, err := testVerifier(t, publicKey("k1", testRSAKey())).VerifyParsed(t.Context(), p)
	if err != nil {
		t.Fatal(err)
	}
	if tok.Receipt() == nil {
		t.Fatal("a verified token has no receipt")
	}
	verified := *tok
	verified.receipt = nil
	if !reflect.DeepEqual(verified, u) {
		t.Fatalf("verified %+v, parsed %+v", verified, u)
	}
}

// TestDetailsAreOneLine checks that untrusted values cannot break a
// detail over several lines or make it unbounded.
func TestDetailsAreOneLine(t *testing.T) {
	long := strings.Repeat("x", 10_000)
	for _, raw := range []string{
		rawToken(t, `{"alg":"RS256","kid":"a\nb"}`, `{}`),
		rawToken(t, `{"alg":"a\r\nb"}`, `{}`),
		rawToken(t, `{"alg":"`+long+`"}`, `{}`),
		rawToken(t, `{"alg":"RS256","kid":"k1"}`, `{"iss":"evil\n`+long+`","aud":"api://orders"}`),
		rawToken(t, `{"alg":"RS256","kid":"k1"}`, `{"iss":"https://issuer.example","aud":["x\ny","`+long+`"]}`),
	} {
		_, err := testVerifier(t, publicKey("k1", testRSAKey())).Verify(t.Context(), raw)
		if err == nil {
			t.Fatal("accepted")
		}
		msg := err.Error()
		if strings.ContainsAny(msg, "\r\n") || len(msg) > 2000 {
			t.Errorf("detail is not one short line: %q", msg)
		}
	}
}

func TestVerifyParsedRejectsZeroParsed(t *testing.T) {
	v := testVerifier(t, publicKey("k1", testRSAKey()))
	for _, p := range []*Parsed{nil, {}} {
		if _, err := v.VerifyParsed(t.Context(), p); code(err) != Malformed {
			t.Errorf("VerifyParsed(%v) = %v, want malformed", p, err)
		}
	}
}
