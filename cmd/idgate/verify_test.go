package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/idgate/idgate/mint"
)

// verifyNow is the time the verify tests check tokens at (--at).
const verifyNow = 1_700_000_000

// verifyFixture is a key, its JWKS file, and a token factory.
type verifyFixture struct {
	key  *mint.Key
	jwks string // path
}

// verifyKey is shared by the verify tests: RSA keys are slow to make.
var verifyKey = sync.OnceValues(func() (*mint.Key, error) { return mint.NewKey("") })

func newVerifyFixture(t *testing.T) *verifyFixture {
	t.Helper()
	key, err := verifyKey()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "jwks.json")
	writeFile(t, path, string(key.JWKS()))
	return &verifyFixture{key: key, jwks: path}
}

func (f *verifyFixture) token(t *testing.T, claims map[string]any, header map[string]any) string {
	t.Helper()
	c := map[string]any{
		"iss": "https://issuer.example", "sub": "alice", "aud": "api://orders",
		"iat": verifyNow - 10, "nbf": verifyNow - 10, "exp": verifyNow + 3600,
	}
	for k, v := range claims {
		if v == nil {
			delete(c, k)
			continue
		}
		c[k] = v
	}
	tok, err := f.key.Sign(c, header)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// runCLI runs idgate with args and stdin and returns the exit status,
// stdout and stderr.
func runCLI(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

func (f *verifyFixture) args(extra ...string) []string {
	return append([]string{"verify", "--jwks", f.jwks,
		"--issuer", "https://issuer.example", "--audience", "api://orders",
		"--at", strconv.Itoa(verifyNow)}, extra...)
}

func TestVerifyCodes(t *testing.T) {
	f := newVerifyFixture(t)
	impostor, err := f.key.Impostor()
	if err != nil {
		t.Fatal(err)
	}
	forged, err := impostor.Sign(map[string]any{"iss": "https://issuer.example", "aud": "api://orders"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	valid := f.token(t, nil, nil)
	for _, tc := range []struct {
		name  string
		token string
		extra []string
		code  string // "" = valid
	}{
		{name: "valid", token: valid},
		{name: "malformed", token: "not.a.token", code: "malformed"},
		{name: "unsupported_alg", token: strings.Join([]string{b64url(`{"alg":"none"}`), b64url(`{}`), b64url("x")}, "."), code: "unsupported_alg"},
		{name: "unknown_kid", token: f.token(t, nil, map[string]any{"kid": "other"}), code: "unknown_kid"},
		// The JWKS says RS256; the token claims PS256.
		{name: "alg_not_allowed", token: f.token(t, nil, map[string]any{"alg": "PS256"}), code: "alg_not_allowed"},
		{name: "bad_signature", token: forged, code: "bad_signature"},
		{name: "wrong_issuer", token: f.token(t, map[string]any{"iss": "https://evil.example"}, nil), code: "wrong_issuer"},
		{name: "expired", token: f.token(t, map[string]any{"exp": verifyNow - 61}, nil), code: "expired"},
		{name: "expired_without_skew", token: f.token(t, map[string]any{"exp": verifyNow - 1}, nil), extra: []string{"--skew", "0s"}, code: "expired"},
		{name: "within_skew", token: f.token(t, map[string]any{"exp": verifyNow - 1}, nil)},
		{name: "within_larger_skew", token: f.token(t, map[string]any{"exp": verifyNow - 100}, nil), extra: []string{"--skew", "2m"}},
		{name: "not_yet_valid", token: f.token(t, map[string]any{"nbf": verifyNow + 61}, nil), code: "not_yet_valid"},
		{name: "wrong_audience", token: f.token(t, map[string]any{"aud": "api://billing"}, nil), code: "wrong_audience"},
		{name: "one_of_two_audiences", token: f.token(t, map[string]any{"aud": "api://billing"}, nil), extra: []string{"--audience=api://billing"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, out, errOut := runCLI(t, "", f.args(append(tc.extra, tc.token)...)...)
			if tc.code == "" {
				if status != 0 || !strings.HasPrefix(out, "valid\n") || !strings.Contains(out, `"sub": "alice"`) {
					t.Fatalf("status %d, stdout %q, stderr %q", status, out, errOut)
				}
				return
			}
			if status != 1 || !strings.HasPrefix(out, "invalid: "+tc.code+": ") || strings.Count(out, "\n") != 1 || errOut != "" {
				t.Fatalf("status %d, stdout %q, stderr %q; want 1 and invalid: %s", status, out, errOut, tc.code)
			}
		})
	}
}

func b64url(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func TestVerifyJSON(t *testing.T) {
	f := newVerifyFixture(t)
	status, out, _ := runCLI(t, "", f.args("-o", "json", f.token(t, map[string]any{"big": json.Number("9223372036854775807")}, nil))...)
	if status != 0 {
		t.Fatalf("status %d: %s", status, out)
	}
	var valid struct {
		Valid  bool            `json:"valid"`
		Header map[string]any  `json:"header"`
		Claims json.RawMessage `json:"claims"`
	}
	if err := json.Unmarshal([]byte(out), &valid); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if !valid.Valid || valid.Header["alg"] != "RS256" || valid.Header["kid"] != f.key.ID() {
		t.Fatalf("got %s", out)
	}
	// Numbers are printed as they were in the token.
	if !strings.Contains(string(valid.Claims), `"big":9223372036854775807`) || strings.Count(out, "\n") != 1 {
		t.Fatalf("claims %s", valid.Claims)
	}

	status, out, _ = runCLI(t, "", f.args("-o", "json", f.token(t, map[string]any{"aud": "x"}, nil))...)
	var invalid struct {
		Valid  *bool  `json:"valid"`
		Code   string `json:"code"`
		Detail string `json:"detail"`
	}
	if err := json.Unmarshal([]byte(out), &invalid); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if status != 1 || invalid.Valid == nil || *invalid.Valid || invalid.Code != "wrong_audience" || !strings.Contains(invalid.Detail, `"x"`) {
		t.Fatalf("status %d, %s", status, out)
	}
}

func TestVerifyStdin(t *testing.T) {
	f := newVerifyFixture(t)
	tok := f.token(t, nil, nil)
	for _, in := range []string{tok, "Bearer " + tok + "\n", "  bearer   " + tok + "\r\n", "\n\tBEARER " + tok} {
		status, out, errOut := runCLI(t, in, f.args("-")...)
		if status != 0 {
			t.Errorf("stdin %q: status %d, %s%s", in, status, out, errOut)
		}
	}
	// The same rule for a token given as an argument.
	if status, out, _ := runCLI(t, "", f.args("Bearer "+tok)...); status != 0 {
		t.Errorf("argument with Bearer: status %d, %s", status, out)
	}
	// Anything else around the token is the token's problem.
	if status, out, _ := runCLI(t, "Basic "+tok, f.args("-")...); status != 1 || !strings.HasPrefix(out, "invalid: malformed") {
		t.Errorf("Basic scheme: status %d, %s", status, out)
	}
}

func TestVerifyUsageAndKeySourceProblems(t *testing.T) {
	f := newVerifyFixture(t)
	tok := f.token(t, nil, nil)
	dir := t.TempDir()
	notJSON := filepath.Join(dir, "bad.json")
	writeFile(t, notJSON, "<html>")
	for _, tc := range []struct {
		name string
		args []string
		want string // in stderr
	}{
		{"unreadable_file", []string{"verify", "--jwks", filepath.Join(dir, "missing.json"), tok}, "missing.json"},
		{"jwks_not_json", []string{"verify", "--jwks", notJSON, tok}, "not a JSON object"},
		{"no_key_source", []string{"verify", tok}, "exactly one of"},
		{"two_key_sources", []string{"verify", "--jwks", f.jwks, "--jwks-uri", "https://example.com/keys", tok}, "exactly one of"},
		{"no_token", []string{"verify", "--jwks", f.jwks}, "arg"},
		{"bad_output", []string{"verify", "--jwks", f.jwks, "-o", "yaml", tok}, "text or json"},
		{"bad_at", []string{"verify", "--jwks", f.jwks, "--at", "yesterday", tok}, "--at"},
		{"negative_skew", []string{"verify", "--jwks", f.jwks, "--skew", "-1s", tok}, "negative"},
		{"bad_skew", []string{"verify", "--jwks", f.jwks, "--skew", "soon", tok}, "skew"},
		{"unknown_flag", []string{"verify", "--jwks", f.jwks, "--bogus", tok}, "bogus"},
		{"discovery_without_issuer", []string{"verify", "--issuer-discovery", tok}, "needs --issuer"},
		{"discovery_for_other_issuer", []string{"verify", "--issuer-discovery", "--issuer", "https://other.example", tok}, "not one of --issuer"},
		{"jwks_uri_unreachable", []string{"verify", "--jwks-uri", "http://127.0.0.1:1/keys", tok}, "127.0.0.1:1"},
		{"bad_issuer_template", []string{"verify", "--jwks", f.jwks, "--issuer", "https://x/{tenantid}/{tenantid}", tok}, "{tenantid}"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, out, errOut := runCLI(t, "", tc.args...)
			if status != 2 || out != "" || !strings.Contains(errOut, tc.want) {
				t.Fatalf("status %d, stdout %q, stderr %q; want 2 and %q", status, out, errOut, tc.want)
			}
		})
	}
	// A key-source problem is reported as one even for a bad token.
	for _, bad := range []string{f.token(t, map[string]any{"exp": 1}, nil), "garbage"} {
		status, _, errOut := runCLI(t, "", "verify", "--jwks", notJSON, bad)
		if status != 2 || !strings.Contains(errOut, "not a JSON object") {
			t.Fatalf("status %d, stderr %q", status, errOut)
		}
	}
}

// TestVerifyFetches covers --jwks-uri and --issuer-discovery against a
// local identity provider.
func TestVerifyFetches(t *testing.T) {
	f := newVerifyFixture(t)
	var fetched []string
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	defer srv.Close()
	mux.HandleFunc("/keys", func(w http.ResponseWriter, r *http.Request) {
		fetched = append(fetched, r.URL.Path)
		w.Write(f.key.JWKS())
	})
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		fetched = append(fetched, r.URL.Path)
		json.NewEncoder(w).Encode(map[string]string{"issuer": srv.URL, "jwks_uri": srv.URL + "/keys"})
	})
	mux.HandleFunc("/broken", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusBadGateway)
	})
	tok := f.token(t, map[string]any{"iss": srv.URL}, nil)
	at := "--at=" + strconv.Itoa(verifyNow)

	if status, out, errOut := runCLI(t, "", "verify", "--jwks-uri", srv.URL+"/keys", at, tok); status != 0 {
		t.Fatalf("--jwks-uri: status %d, %s%s", status, out, errOut)
	}
	fetched = nil
	if status, out, errOut := runCLI(t, "", "verify", "--issuer-discovery", "--issuer", srv.URL, at, tok); status != 0 {
		t.Fatalf("--issuer-discovery: status %d, %s%s", status, out, errOut)
	}
	if strings.Join(fetched, " ") != "/.well-known/openid-configuration /keys" {
		t.Fatalf("fetched %v", fetched)
	}
	// No fetch at all for a token whose issuer is not accepted.
	fetched = nil
	other := f.token(t, map[string]any{"iss": "https://elsewhere.example"}, nil)
	if status, _, _ := runCLI(t, "", "verify", "--issuer-discovery", "--issuer", srv.URL, at, other); status != 2 || fetched != nil {
		t.Fatalf("status %d, fetched %v", status, fetched)
	}
	if status, _, errOut := runCLI(t, "", "verify", "--jwks-uri", srv.URL+"/broken", at, tok); status != 2 || !strings.Contains(errOut, "502") {
		t.Fatalf("failed fetch: status %d, %s", status, errOut)
	}
}
