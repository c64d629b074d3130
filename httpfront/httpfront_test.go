package httpfront

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/idgate/idgate/engine"
	"github.com/idgate/idgate/enginetest"
	"github.com/idgate/idgate/request"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

const policies = `
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: foo}
spec:
  jwtRules:
  - issuer: https://issuer.example
    audiences: [api://orders]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: require-jwt, namespace: foo}
spec:
  rules:
  - from:
    - source: {requestPrincipals: ["*"]}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ext, namespace: foo}
spec:
  action: CUSTOM
  provider: {name: opa}
  rules:
  - to:
    - operation: {paths: ["/ext"]}
`

type fixture struct{ *enginetest.Fixture }

func newFixture(t *testing.T) fixture {
	return fixture{enginetest.New(t, policies, engine.Options{})}
}

func (f fixture) token(t *testing.T, claims map[string]any) string { return f.Token(t, claims) }

func attrs(path, query, tok string) *request.Attributes {
	a := &request.Attributes{
		Method: "GET", Scheme: "https", Host: "orders.example", Path: path, Query: query, Header: http.Header{},
		SourceIP: netip.MustParseAddr("10.0.0.1"), RemoteIP: netip.MustParseAddr("10.0.0.1"),
		RequestID: "req-1", Frontend: "test",
	}
	if tok != "" {
		a.Header.Set("Authorization", "Bearer "+tok)
	}
	return a
}

// dump renders a recorded response for a golden file: status, headers in
// name order, body.
func dump(rec *httptest.ResponseRecorder) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d\n", rec.Code)
	names := make([]string, 0, len(rec.Header()))
	for k := range rec.Header() {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		for _, v := range rec.Header()[k] {
			fmt.Fprintf(&b, "%s: %s\n", k, v)
		}
	}
	b.WriteString("\n")
	b.WriteString(rec.Body.String())
	return b.String()
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("response differs from %s:\n--- got\n%s--- want\n%s", path, got, want)
	}
}

// Denials carry the status, a short reason, the request id and — only
// for a rejected token — the WWW-Authenticate challenge; never the token.
func TestDeny(t *testing.T) {
	f := newFixture(t)
	expired := f.token(t, map[string]any{"exp": 1})
	tests := []struct {
		name string
		a    *request.Attributes
	}{
		{"expired_token", attrs("/api", "page=2", expired)},
		{"wrong_audience", attrs("/api", "", f.token(t, map[string]any{"aud": "api://other"}))},
		{"garbage_token", attrs("/api", "", "not.a.token")},
		{"no_allow_match", attrs("/api", "", "")},
		{"custom_with_bad_token", attrs("/ext", "", expired)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := f.Engine.Decide(context.Background(), tt.a)
			if d.Allowed {
				t.Fatalf("decision allows: %v", d)
			}
			rec := httptest.NewRecorder()
			Deny(rec, tt.a, d)
			if rec.Code != d.Status {
				t.Errorf("status %d, decision says %d", rec.Code, d.Status)
			}
			if tok := tt.a.Header.Get("Authorization"); tok != "" && strings.Contains(dump(rec), strings.TrimPrefix(tok, "Bearer ")) {
				t.Error("response repeats the token")
			}
			golden(t, "deny_"+tt.name, dump(rec))
		})
	}
}

// A decision that is not allowed is never answered with a success.
func TestDenyNeverSucceeds(t *testing.T) {
	rec := httptest.NewRecorder()
	Deny(rec, attrs("/", "", ""), engine.Decision{Status: http.StatusOK, Reason: "odd"})
	if rec.Code != http.StatusForbidden {
		t.Errorf("status %d, want 403", rec.Code)
	}
}

func TestBadRequest(t *testing.T) {
	tests := []struct {
		name   string
		target string
		status int
	}{
		{"nul", "/a%00b", 400},
		{"fragment", "/a#b", 400},
		{"asterisk", "*", 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := request.NormalizePath(tt.target)
			if err == nil {
				t.Fatalf("NormalizePath(%q) succeeded", tt.target)
			}
			rec := httptest.NewRecorder()
			BadRequest(rec, fmt.Errorf("build attributes: %w", err), "req-2")
			if rec.Code != tt.status {
				t.Errorf("status %d, want %d", rec.Code, tt.status)
			}
			golden(t, "bad_request_"+tt.name, dump(rec))
		})
	}
	rec := httptest.NewRecorder()
	BadRequest(rec, errors.New("something else"), "req-3")
	if rec.Code != 400 {
		t.Errorf("status %d for a plain error, want 400", rec.Code)
	}
}

// Error replaces headers that describe a body the response no longer has.
func TestErrorDropsBodyHeaders(t *testing.T) {
	rec := httptest.NewRecorder()
	rec.Header().Set("Content-Length", "12345")
	rec.Header().Set("Content-Encoding", "gzip")
	rec.Header().Set("Content-Type", "application/json")
	rec.Header().Set("Vary", "Origin")
	Error(rec, http.StatusBadGateway, UpstreamUnavailable, "req-4")
	golden(t, "error_upstream", dump(rec))
}

func TestRequestID(t *testing.T) {
	tests := []struct {
		incoming []string
		keep     bool
	}{
		{nil, false},
		{[]string{"abc-123"}, true},
		{[]string{"a b"}, false},
		{[]string{"line\nbreak"}, false},
		{[]string{strings.Repeat("x", 129)}, false},
		{[]string{"first", "second"}, true},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", "/", nil)
		for _, v := range tt.incoming {
			r.Header.Add(request.RequestIDHeader, v)
		}
		id := RequestID(r)
		if got := r.Header.Values(request.RequestIDHeader); len(got) != 1 || got[0] != id {
			t.Errorf("incoming %q: request header = %q, want [%q]", tt.incoming, got, id)
		}
		if tt.keep && id != tt.incoming[0] {
			t.Errorf("incoming %q: id %q, want it kept", tt.incoming, id)
		}
		if !tt.keep && (id == "" || len(tt.incoming) > 0 && id == tt.incoming[0]) {
			t.Errorf("incoming %q: id %q, want a new one", tt.incoming, id)
		}
	}
	a, b := RequestID(httptest.NewRequest("GET", "/", nil)), RequestID(httptest.NewRequest("GET", "/", nil))
	if a == b {
		t.Errorf("two new ids are equal: %q", a)
	}
}

func TestRealm(t *testing.T) {
	a := attrs("/a/b", "access_token=secret", "")
	if got, want := Realm(a), "https://orders.example/a/b"; got != want {
		t.Errorf("Realm = %q, want %q", got, want)
	}
	a.Scheme = ""
	if got := Realm(a); !bytes.HasPrefix([]byte(got), []byte("http://")) {
		t.Errorf("Realm without a scheme = %q, want http://...", got)
	}
}
