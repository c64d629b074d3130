package policytest

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseValid(t *testing.T) {
	f, err := ReadFile("testdata/parse/valid.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if f.Name != "orders API requires an Entra ID token" || f.Source != "docs/examples/orders.md" {
		t.Errorf("name/source = %q/%q", f.Name, f.Source)
	}
	if len(f.Policies) != 1 || f.Policies[0].Line != 5 {
		t.Errorf("policies: %d, first at line %d; want 1 at line 5", len(f.Policies), f.Policies[0].Line)
	}
	if !reflect.DeepEqual(f.PolicyFiles, []string{"../policies/orders.yaml"}) {
		t.Errorf("policy_files = %v", f.PolicyFiles)
	}
	if f.TokenDefaults["sub"] != "alice" {
		t.Errorf("token_defaults = %v", f.TokenDefaults)
	}
	if len(f.Cases) != 2 {
		t.Fatalf("cases = %d, want 2", len(f.Cases))
	}
	c0 := f.Cases[0]
	wantReq := Request{
		Method: "POST", Host: "orders.example.com:8443", Path: "/api/orders?x=1", Port: 8443, Scheme: "https",
		SourceIP: "10.0.0.7", RemoteIP: "203.0.113.9", Headers: map[string]string{"x-tenant": "contoso"},
		Token: TokenSpec{Kind: TokenNone},
	}
	if !reflect.DeepEqual(c0.Request, wantReq) {
		t.Errorf("case 0 request = %+v\nwant %+v", c0.Request, wantReq)
	}
	if c0.Expect != (Expect{Status: 403, Policy: "foo/require-jwt"}) {
		t.Errorf("case 0 expect = %+v", c0.Expect)
	}
	c1 := f.Cases[1]
	if c1.Name != "cases[1]" {
		t.Errorf("unnamed case got name %q, want its position", c1.Name)
	}
	if c1.Request.Token.Kind != TokenClaims || c1.Request.Token.Claims["sub"] != "bob" {
		t.Errorf("case 1 token = %+v", c1.Request.Token)
	}
	if got := c1.Request.Token.Claims["groups"]; !reflect.DeepEqual(got, []any{"a", "b"}) {
		t.Errorf("groups claim = %#v", got)
	}
	if got := c1.Request.Token.Claims["nested"]; !reflect.DeepEqual(got, map[string]any{"x": int64(1)}) {
		t.Errorf("nested claim = %#v", got)
	}
	if pl := c1.Request.TokenIn; pl.Header != "X-Token" || pl.Prefix == nil || *pl.Prefix != "" {
		t.Errorf("token_in = %+v", pl)
	}
	if len(c1.ExtraTokens) != 2 || c1.ExtraTokens[0].Token.Kind != TokenExpired || c1.ExtraTokens[0].TokenIn.Query != "access_token" ||
		c1.ExtraTokens[1].Token.Raw != "a.b.c" || c1.ExtraTokens[1].Token.At != 1700000000 || c1.ExtraTokens[1].TokenIn.Cookie != "session" {
		t.Errorf("extra_tokens = %+v", c1.ExtraTokens)
	}
}

// Every mistake in a test file is reported with the file, the line and
// what is wrong; the contract makes these exit status 2.
func TestParseErrors(t *testing.T) {
	const head = "policies: [{kind: AuthorizationPolicy}]\n"
	tests := []struct {
		name, yaml, want string
	}{
		{"empty", "", "empty file"},
		{"two documents", head + "cases: [{expect: {status: 200}}]\n---\nname: x\n", ":3: a test file holds one YAML document"},
		{"unknown top-level field", head + "cases: [{expect: {status: 200}}]\ncase: []\n", `:3: test file: unknown field "case"`},
		{"no cases", head, "no cases"},
		{"no policies", "cases: [{expect: {status: 200}}]\n", "no policies"},
		{"unknown request field", head + "cases:\n- request: {methd: GET}\n  expect: {status: 200}\n", `:3: cases[0].request: unknown field "methd"`},
		{"missing expect", head + "cases:\n- name: x\n", ":3: cases[0]: expect.status is required"},
		{"bad status", head + "cases:\n- expect: {status: 302}\n", ":3: cases[0].expect.status: 302 is not an outcome"},
		{"status as string", head + "cases:\n- expect: {status: ok}\n", `cases[0].expect.status: want an integer, got "ok"`},
		{"unknown token kind", head + "cases:\n- request: {token: bogus}\n  expect: {status: 200}\n", `unknown token "bogus"`},
		{"claims and raw", head + "cases:\n- request: {token: {claims: {a: 1}, raw: x}}\n  expect: {status: 200}\n", "claims and raw are both given"},
		{"at without raw", head + "cases:\n- request: {token: {claims: {a: 1}, at: 5}}\n  expect: {status: 200}\n", "at goes with raw"},
		{"bad relative time", head + "cases:\n- request: {token: {claims: {exp: tomorrow}}}\n  expect: {status: 200}\n", `claims.exp: "tomorrow" is not a time`},
		{"two placements", head + "cases:\n- request: {token_in: {header: a, query: b}}\n  expect: {status: 200}\n", "give exactly one of header, query or cookie"},
		{"prefix without header", head + "cases:\n- request: {token_in: {query: b, prefix: x}}\n  expect: {status: 200}\n", "prefix goes with header"},
		{"bad header name", head + "cases:\n- request: {headers: {\"a b\": x}}\n  expect: {status: 200}\n", `"a b" is not a valid header name`},
		{"duplicate header", head + "cases:\n- request: {headers: {X-A: 1, x-a: 2}}\n  expect: {status: 200}\n", `header "x-a" given twice`},
		{"path without slash", head + "cases:\n- request: {path: api}\n  expect: {status: 200}\n", `"api" must start with /`},
		{"port out of range", head + "cases:\n- request: {port: 70000}\n  expect: {status: 200}\n", "70000 is not a port"},
		{"bad scheme", head + "cases:\n- request: {scheme: ftp}\n  expect: {status: 200}\n", `"ftp" is not http or https`},
		{"policy not a mapping", "policies: [x]\ncases: [{expect: {status: 200}}]\n", `:1: policies[0]: want an Istio document`},
		{"jwks and jwks_file", head + "jwks: {keys: []}\njwks_file: k.json\ncases: [{expect: {status: 200}}]\n", "jwks and jwks_file are both given"},
		{"extra token without token", head + "cases:\n- extra_tokens: [{token_in: {query: a}}]\n  expect: {status: 200}\n", "extra_tokens[0]: token is required"},
		{"bad yaml", "cases: [\n", "test.yaml:"},
		{"an Istio document", "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n", ":1: this is an Istio document, not a policy test file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("test.yaml", []byte(tt.yaml))
			if err == nil {
				t.Fatalf("Parse succeeded; want error containing %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "test.yaml") {
				t.Errorf("error = %q\nwant it to start with the file and contain %q", err, tt.want)
			}
		})
	}
}

func TestFilesOrderAndRecursion(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"b.yaml", "a/z.yml", "a/y.txt", "c.yaml"} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := Files([]string{dir})
	if err != nil {
		t.Fatal(err)
	}
	var rel []string
	for _, g := range got {
		r, _ := filepath.Rel(dir, g)
		rel = append(rel, r)
	}
	want := []string{"a/z.yml", "b.yaml", "c.yaml"}
	if !reflect.DeepEqual(rel, want) {
		t.Errorf("Files = %v, want %v", rel, want)
	}
	if _, err := Files([]string{filepath.Join(dir, "missing")}); err == nil {
		t.Error("Files of a missing path succeeded")
	}
}

func TestRelativeTime(t *testing.T) {
	for _, tt := range []struct {
		in   any
		want int64
		ok   bool
	}{
		{int64(1700000000), 1700000000, true},
		{"now", 1000, true},
		{"now+60", 1060, true},
		{"now-3600", -2600, true},
		{"now+ 5", 1005, true},
		{"now+-5", 0, false},
		{"later", 0, false},
		{1.5, 0, false},
	} {
		got, err := RelativeTime(tt.in, 1000)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("RelativeTime(%v) = %d, %v; want %d, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}
