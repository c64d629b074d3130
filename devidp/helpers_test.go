package devidp

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/idgate/idgate/keyset"
	"github.com/idgate/idgate/token"
)

// Names and IDs of the built-in directory the tests rely on.
const (
	tenantID      = "3f8d6a2e-5b7c-4e19-9a0d-1c2b3d4e5f60"
	apiClientID   = "6e0c9d4b-1a8f-4a36-9a5b-3c2f3d1e0a77"
	apiAppIDURI   = "api://orders-api"
	clientID      = "9b8a7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
	clientObject  = "8b8a7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
	idgateClient  = "1d9a7e00-0000-4000-8000-0000001d9a7e"
	aliceOID      = "a11ce000-0000-4000-8000-00000000a11c"
	employeesID   = "6f6f6f6f-0000-4000-8000-000000000001"
	adminsID      = "0b1a2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
	v2Issuer      = "https://login.microsoftonline.com/" + tenantID + "/v2.0"
	v1Issuer      = "https://sts.windows.net/" + tenantID + "/"
	redirectURI   = "http://127.0.0.1:8080/oauth2/callback"
	orderScopeAll = "api://orders-api/.default"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// idp is a provider served over httptest.
type idp struct {
	*Provider
	srv *httptest.Server
}

func newIDP(t *testing.T, dir *Directory, opts Options) *idp {
	t.Helper()
	if dir == nil {
		dir = DefaultDirectory()
	}
	opts.Logger = quiet
	p, err := New(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	return &idp{Provider: p, srv: srv}
}

// noRedirect is a client that shows redirects instead of following them.
var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// post sends a form and returns the status and decoded JSON body.
func (i *idp) post(t *testing.T, path string, form url.Values) (int, map[string]any) {
	t.Helper()
	resp, err := noRedirect.PostForm(i.srv.URL+path, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	return resp.StatusCode, decodeJSON(t, resp.Body)
}

func (i *idp) get(t *testing.T, path string) (*http.Response, []byte) {
	t.Helper()
	resp, err := noRedirect.Get(i.srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func decodeJSON(t *testing.T, r io.Reader) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.NewDecoder(r).Decode(&m); err != nil {
		t.Fatalf("response is not JSON: %v", err)
	}
	return m
}

// tokenFor runs a token request that must succeed and returns the
// response's fields.
func (i *idp) tokenFor(t *testing.T, path string, form url.Values) map[string]any {
	t.Helper()
	status, body := i.post(t, path, form)
	if status != http.StatusOK {
		t.Fatalf("POST %s: %d %v", path, status, body)
	}
	return body
}

// claims returns the unverified claims of a compact JWS.
func claims(t *testing.T, raw any) map[string]any {
	t.Helper()
	s, _ := raw.(string)
	p, err := token.Parse(s)
	if err != nil {
		t.Fatalf("not a token: %v", err)
	}
	return p.Unverified.Claims
}

// header returns the unverified JOSE header of a compact JWS.
func header(t *testing.T, raw any) map[string]any {
	t.Helper()
	s, _ := raw.(string)
	p, err := token.Parse(s)
	if err != nil {
		t.Fatalf("not a token: %v", err)
	}
	return p.Unverified.Header
}

// verifier verifies tokens as idgate does: a real keyset fetching the
// provider's JWKS over HTTP, and token.Verify.
func (i *idp) verifier(t *testing.T, jwksPath string, issuers, audiences []string, now func() time.Time) *token.Verifier {
	t.Helper()
	ks, err := keyset.New(keyset.Config{JWKSURI: i.srv.URL + jwksPath, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ks.Close() })
	v, err := token.NewVerifier(token.Config{Issuers: issuers, Audiences: audiences, Keys: ks, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func verify(t *testing.T, v *token.Verifier, raw any) (*token.Token, error) {
	t.Helper()
	s, _ := raw.(string)
	return v.Verify(context.Background(), s)
}

func wantString(t *testing.T, c map[string]any, name, want string) {
	t.Helper()
	if got, _ := c[name].(string); got != want {
		t.Errorf("claim %s = %v, want %q", name, c[name], want)
	}
}

func wantAbsent(t *testing.T, c map[string]any, names ...string) {
	t.Helper()
	for _, n := range names {
		if v, ok := c[n]; ok {
			t.Errorf("claim %s = %v, want none", n, v)
		}
	}
}

func wantList(t *testing.T, c map[string]any, name string, want ...string) {
	t.Helper()
	list, _ := c[name].([]any)
	var got []string
	for _, v := range list {
		s, _ := v.(string)
		got = append(got, s)
	}
	if strings.Join(got, "\x00") != strings.Join(want, "\x00") {
		t.Errorf("claim %s = %v, want %q", name, c[name], want)
	}
}
