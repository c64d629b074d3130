package keyset

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
)

func TestParseDiscovery(t *testing.T) {
	entra, err := os.ReadFile("testdata/entra/common-v2-openid-configuration.json")
	if err != nil {
		t.Fatal(err)
	}
	ok := []struct {
		name string
		doc  string
		want Discovery
	}{
		{"entra common v2", string(entra), Discovery{
			Issuer:  "https://login.microsoftonline.com/{tenantid}/v2.0",
			JWKSURI: "https://login.microsoftonline.com/common/discovery/v2.0/keys",
		}},
		{"minimal", `{"issuer":"https://idp.example","jwks_uri":"https://idp.example/keys"}`,
			Discovery{"https://idp.example", "https://idp.example/keys"}},
		{"escaped names and values", `{"\u0069ssuer":"https:\/\/idp.example\/","jwks_uri":"https://idp.example/k\u0065ys"}`,
			Discovery{"https://idp.example/", "https://idp.example/keys"}},
		{"whitespace and nested members", " \n{\"a\":{\"b\":[1,{\"c\":null}]},\"issuer\":\"x\",\"jwks_uri\":\"http://127.0.0.1:8080/k\"}\n ",
			Discovery{"x", "http://127.0.0.1:8080/k"}},
	}
	for _, tt := range ok {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseDiscovery([]byte(tt.doc))
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}

	bad := []struct {
		name, doc, want string
	}{
		{"empty", ``, "not JSON"},
		{"not json", `<html>`, "not JSON"},
		{"array", `[{"issuer":"x","jwks_uri":"https://a/k"}]`, "not a JSON object"},
		{"string", `"x"`, "not a JSON object"},
		{"truncated", `{"issuer":"x","jwks_uri":"https://a/k"`, "not JSON"},
		{"trailing data", `{"issuer":"x","jwks_uri":"https://a/k"} {}`, "data after its JSON object"},
		{"trailing comma", `{"issuer":"x","jwks_uri":"https://a/k",}`, "not JSON"},
		{"no issuer", `{"jwks_uri":"https://a/k"}`, `no "issuer"`},
		{"no jwks_uri", `{"issuer":"x"}`, `no "jwks_uri"`},
		{"names are case-sensitive", `{"Issuer":"x","JWKS_URI":"https://a/k"}`, `no "issuer"`},
		{"duplicate issuer", `{"issuer":"x","jwks_uri":"https://a/k","issuer":"y"}`, `"issuer" more than once`},
		{"duplicate jwks_uri", `{"jwks_uri":"https://a/k","jwks_uri":"https://b/k","issuer":"x"}`, `"jwks_uri" more than once`},
		{"escaped duplicate", `{"issuer":"x","\u0069ssuer":"y","jwks_uri":"https://a/k"}`, `"issuer" more than once`},
		{"issuer not string", `{"issuer":1,"jwks_uri":"https://a/k"}`, `"issuer" is not a string`},
		{"issuer null", `{"issuer":null,"jwks_uri":"https://a/k"}`, `"issuer" is not a string`},
		{"jwks_uri array", `{"issuer":"x","jwks_uri":["https://a/k"]}`, `"jwks_uri" is not a string`},
		{"issuer empty", `{"issuer":"","jwks_uri":"https://a/k"}`, `"issuer" is empty`},
		{"jwks_uri http", `{"issuer":"x","jwks_uri":"http://idp.example/k"}`, "http is only allowed for loopback"},
		{"jwks_uri relative", `{"issuer":"x","jwks_uri":"/k"}`, "not an absolute URL"},
		{"jwks_uri file", `{"issuer":"x","jwks_uri":"file:///etc/passwd"}`, `scheme "file" is not https`},
		{"invalid utf-8", "{\"issuer\":\"x\xff\",\"jwks_uri\":\"https://a/k\"}", "not valid UTF-8"},
		{"too large", `{"issuer":"x","jwks_uri":"https://a/k","pad":"` + strings.Repeat("a", maxBody) + `"}`, "larger than 1048576 bytes"},
		{"too deep", `{"a":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}`, "not JSON"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			d, err := ParseDiscovery([]byte(tt.doc))
			if err == nil {
				t.Fatalf("accepted: %+v", d)
			}
			wantErr(t, err, tt.want)
		})
	}
}

func TestDiscoveryURL(t *testing.T) {
	ok := map[string]string{
		"https://idp.example":  "https://idp.example/.well-known/openid-configuration",
		"https://idp.example/": "https://idp.example/.well-known/openid-configuration",
		"https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0": "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0/.well-known/openid-configuration",
		"https://sts.windows.net/72f988bf-86f1-41af-91ab-2d7cd011db47/":               "https://sts.windows.net/72f988bf-86f1-41af-91ab-2d7cd011db47/.well-known/openid-configuration",
		"https://login.microsoftonline.com/{tenantid}/v2.0":                           "https://login.microsoftonline.com/organizations/v2.0/.well-known/openid-configuration",
		"https://login.microsoftonline.us/{tenantid}/v2.0":                            "https://login.microsoftonline.us/organizations/v2.0/.well-known/openid-configuration",
		"https://login.partner.microsoftonline.cn/{tenantid}/v2.0":                    "https://login.partner.microsoftonline.cn/organizations/v2.0/.well-known/openid-configuration",
		"https://login.microsoftonline.com/{tenantid}":                                "https://login.microsoftonline.com/organizations/.well-known/openid-configuration",
		"http://localhost:8080/realms/dev":                                            "http://localhost:8080/realms/dev/.well-known/openid-configuration",
	}
	for issuer, want := range ok {
		got, err := DiscoveryURL(issuer)
		if err != nil || got != want {
			t.Errorf("DiscoveryURL(%q) = %q, %v; want %q", issuer, got, err, want)
		}
	}
	for _, issuer := range []string{
		"", "idp.example", "http://idp.example", "https://idp.example?x", "https://idp.example/#f",
		"https://u:p@idp.example", "https://h/{tenantid}{tenantid}", "https://h/{TENANTID}", "https://h/{tenantid",
		"https://h/a{tenantid}", "https://h/{tenantid}b", "https://{tenantid}/", "https://h{tenantid}/",
	} {
		if got, err := DiscoveryURL(issuer); err == nil {
			t.Errorf("DiscoveryURL(%q) = %q, want an error", issuer, got)
		}
	}
}

func FuzzParseDiscovery(f *testing.F) {
	entra, err := os.ReadFile("testdata/entra/common-v2-openid-configuration.json")
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{
		string(entra),
		`{"issuer":"https://idp.example","jwks_uri":"https://idp.example/keys"}`,
		`{"\u0069ssuer":"x","jwks_uri":"http://[::1]/k","issuer":"y"}`,
		`{"issuer":"x","jwks_uri":"https://a/k"} []`,
		`{"a":[{"b":{}}],"issuer":null}`,
		`[1,2]`,
		"{\"issuer\":\"\xff\"}",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := ParseDiscovery(data)
		if err != nil {
			return
		}
		if d.Issuer == "" || d.JWKSURI == "" {
			t.Fatalf("accepted with an empty member: %+v", d)
		}
		if err := checkURL(d.JWKSURI); err != nil {
			t.Fatalf("accepted jwks_uri %q: %v", d.JWKSURI, err)
		}
		if !json.Valid(data) {
			t.Fatalf("accepted invalid JSON %q", data)
		}
		// What was read is what a plain decoder sees in the same document.
		var plain map[string]any
		if err := json.Unmarshal(data, &plain); err != nil {
			t.Fatalf("accepted %q, which encoding/json rejects: %v", data, err)
		}
		if plain["issuer"] != d.Issuer || plain["jwks_uri"] != d.JWKSURI {
			t.Fatalf("read %+v, encoding/json reads issuer %v, jwks_uri %v", d, plain["issuer"], plain["jwks_uri"])
		}
		again, err := ParseDiscovery(mustJSON(t, map[string]string{"issuer": d.Issuer, "jwks_uri": d.JWKSURI}))
		if err != nil || again != d {
			t.Fatalf("round trip of %+v: %+v, %v", d, again, err)
		}
	})
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
