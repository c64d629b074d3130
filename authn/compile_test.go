package authn

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"

	securityv1beta1 "istio.io/api/security/v1beta1"

	"github.com/idgate/idgate/policy"
	"github.com/idgate/idgate/request"
	"github.com/idgate/idgate/token"
)

// Rules of all documents are merged and sorted by issuer, keeping document
// order among equal issuers (istio-semantics.md §2: policy_applier.go
// sorts by issuer).
func TestCompileMergesAndSorts(t *testing.T) {
	docs := append(load(t, "two-issuers.yaml"), load(t, "aud.yaml")...)
	a, err := Compile(docs, options())
	if err != nil {
		t.Fatal(err)
	}
	want := []Rule{
		{"default/two-issuers", 1, iss1},
		{"default/two-issuers", 2, iss1},
		{"default/request-authn-part1", 0, iss1},
		{"default/two-issuers", 0, iss2},
		{"default/request-authn-part1", 1, iss2},
		{"default/request-authn-part2", 0, iss2},
	}
	if got := a.Rules(); !slices.Equal(got, want) {
		t.Errorf("Rules() =\n%v\nwant\n%v", got, want)
	}
}

// Compile fails, naming the document and rule, when a rule's keys or
// verifier cannot be set up.
func TestCompileErrors(t *testing.T) {
	doc := func(issuer string) []*policy.Document {
		return []*policy.Document{{
			File: "p.yaml", Line: 3, Kind: "RequestAuthentication", Name: "ra", Namespace: "ns",
			RequestAuthentication: &securityv1beta1.RequestAuthentication{JwtRules: []*securityv1beta1.JWTRule{
				{Issuer: issuer, JwksUri: "https://example.com/jwks"},
			}},
		}}
	}
	tenants := options()
	tenants.AllowedTenants = []string{"not-a-guid"}
	tests := []struct {
		name string
		docs []*policy.Document
		opts Options
		want string
	}{
		{"no keys option", doc(iss1), Options{}, "Options.Keys is required"},
		{"keys fail", doc(iss1), Options{
			Keys: func(*securityv1beta1.JWTRule) (token.KeySource, error) { return nil, errors.New("jwks unreadable") },
		}, "p.yaml:3: RequestAuthentication ns/ra: jwtRules[0]: keys: jwks unreadable"},
		{"allowed tenant not a GUID", doc("https://login.microsoftonline.com/{tenantid}/v2.0"), tenants, "not-a-guid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := Compile(tt.docs, tt.opts)
			if err == nil {
				t.Fatalf("Compile succeeded: %v", a.Rules())
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

// Without any RequestAuthentication nothing is looked at: no identity, no
// rejection, no changes (Istio adds no jwt_authn filter, §3).
func TestNoRules(t *testing.T) {
	a, err := Compile(nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	res := a.Authenticate(context.Background(), get("/", "Authorization", "Bearer deadbeef"))
	if res.Status != http.StatusOK || res.Identity != nil || res.Err != nil || len(res.Changes.RemoveHeaders) != 0 {
		t.Errorf("Authenticate = %+v, want a plain 200", res)
	}
}

// A rejection says which rule decided and which tokens were tried, with
// the unverified issuer and audience read from them.
func TestExplanation(t *testing.T) {
	a := compile(t, "aud.yaml")
	tok := sign(t, iss1, claims(iss1, "sub-1", map[string]any{"aud": "other"}))
	res := a.Authenticate(context.Background(), get("/", "Authorization", "Bearer "+tok))
	if res.Status != http.StatusForbidden {
		t.Fatalf("status %d: %v", res.Status, res.Err)
	}
	if res.Rule == nil || *res.Rule != (Rule{"default/request-authn-part1", 0, iss1}) {
		t.Errorf("Rule = %v, want request-authn-part1 rule 0", res.Rule)
	}
	if len(res.Tokens) != 1 {
		t.Fatalf("Tokens = %+v, want one", res.Tokens)
	}
	f := res.Tokens[0]
	if f.Location != defaultHeader || f.UnverifiedIssuer != iss1 || !slices.Equal(f.UnverifiedAudiences, []string{"other"}) {
		t.Errorf("Found = %+v", f)
	}
	var codes []token.Code
	for _, c := range f.Checks {
		codes = append(codes, c.Err.Code)
	}
	// The iss1 rule rejects the audience; both iss2 rules do not route it.
	want := []token.Code{token.WrongAudience, token.WrongIssuer, token.WrongIssuer}
	if !slices.Equal(codes, want) {
		t.Errorf("check codes = %v, want %v", codes, want)
	}

	// An issuer no rule names: no deciding rule, and the detail names it.
	unknown := sign(t, iss1, claims("https://unknown.example", "x", nil))
	res = a.Authenticate(context.Background(), get("/", "Authorization", "Bearer "+unknown))
	if res.Rule != nil || res.Err == nil || !strings.Contains(res.Err.Detail, `(unverified): token iss "https://unknown.example" is not accepted (accepted: "test-issuer-1@istio.io", "test-issuer-2@istio.io")`) {
		t.Errorf("unknown issuer: rule %v, err %v", res.Rule, res.Err)
	}
}

// A request cannot make idgate verify or compare any number of tokens:
// too many different ones, or too many at all, are rejected unchecked.
func TestTooManyTokens(t *testing.T) {
	a := compile(t, "default.yaml")
	valid := sign(t, entra, claims(entra, "alice", map[string]any{"aud": entraAud}))
	different := get("/")
	for i := range maxTokens + 1 {
		different.Header.Add("Authorization", "Bearer "+sign(t, entra, claims(entra, strings.Repeat("x", i+1), map[string]any{"aud": entraAud})))
	}
	repeated := get("/")
	for range 10_000 {
		repeated.Header.Add("Authorization", "Bearer "+valid)
	}
	for name, r := range map[string]*request.Attributes{"different": different, "repeated": repeated} {
		res := a.Authenticate(context.Background(), r)
		if res.Status != http.StatusUnauthorized || res.Err.Code != MultipleTokens {
			t.Fatalf("%s: status %d, err %v; want 401 %s", name, res.Status, res.Err, MultipleTokens)
		}
		if len(res.Tokens) > maxFound+1 {
			t.Errorf("%s: %d tokens looked at, want at most %d", name, len(res.Tokens), maxFound+1)
		}
		for _, f := range res.Tokens {
			if len(f.Checks) != 0 {
				t.Fatalf("%s: tokens were checked: %+v", name, f.Checks)
			}
		}
	}
	// The same token a few times is one token (jwt_test.go valid-token-set).
	few := get("/", "Authorization", "Bearer "+valid, "Authorization", "Bearer "+valid)
	if res := a.Authenticate(context.Background(), few); res.Identity == nil {
		t.Errorf("the same token twice: status %d, err %v", res.Status, res.Err)
	}
}

// Envoy's jwt_authn answers a rejection with `Bearer realm="<url>",
// error="invalid_token"` (istio-semantics.md §1.2, envoyproxy/envoy#16216).
func TestWWWAuthenticate(t *testing.T) {
	tests := []struct {
		res   Result
		realm string
		want  string
	}{
		{Result{Status: 200}, "http://x/", ""},
		{Result{Status: 401}, "http://example.com/api", `Bearer realm="http://example.com/api", error="invalid_token"`},
		{Result{Status: 403}, "http://example.com/api", `Bearer realm="http://example.com/api", error="invalid_token"`},
		{Result{Status: 401}, "http://e/\"q\\\r\n", `Bearer realm="http://e/\"q\\", error="invalid_token"`},
	}
	for _, tt := range tests {
		if got := tt.res.WWWAuthenticate(tt.realm); got != tt.want {
			t.Errorf("WWWAuthenticate(%q) for %d = %q, want %q", tt.realm, tt.res.Status, got, tt.want)
		}
	}
}

// Authenticate is safe for concurrent use (run with -race).
func TestConcurrent(t *testing.T) {
	a := compile(t, "default.yaml")
	tok := sign(t, entra, claims(entra, "alice", map[string]any{"aud": entraAud}))
	done := make(chan Result)
	for range 8 {
		go func() {
			done <- a.Authenticate(context.Background(), &request.Attributes{Method: "GET", Header: http.Header{"Authorization": {"Bearer " + tok}}})
		}()
	}
	for range 8 {
		if res := <-done; res.Identity == nil {
			t.Errorf("status %d: %v", res.Status, res.Err)
		}
	}
}

// A rule whose issuer is an Entra template routes tokens of any tenant to
// its verifier, which checks the tenant strictly: tid must be the GUID in
// iss, and one of Options.AllowedTenants when they are given.
func TestTenantTemplate(t *testing.T) {
	const (
		tenantA = "aaaaaaaa-0000-0000-0000-000000000001"
		tenantB = "bbbbbbbb-0000-0000-0000-000000000002"
	)
	issOf := func(tid string) string { return "https://login.microsoftonline.com/" + tid + "/v2.0" }
	tok := func(iss, tid string) string {
		return sign(t, entra, claims(iss, "alice", map[string]any{"aud": entraAud, "tid": tid}))
	}
	tests := []struct {
		name    string
		allowed []string
		tok     string
		status  int
		code    token.Code
		princ   string
	}{
		{"any tenant", nil, tok(issOf(tenantB), tenantB), 200, "", issOf(tenantB) + "/alice"},
		{"tid differs from iss", nil, tok(issOf(tenantA), tenantB), 401, token.WrongIssuer, ""},
		{"allowed tenant", []string{tenantA}, tok(issOf(tenantA), tenantA), 200, "", issOf(tenantA) + "/alice"},
		{"tenant not allowed", []string{tenantA}, tok(issOf(tenantB), tenantB), 401, token.WrongIssuer, ""},
		{"other issuer", nil, tok("https://sts.windows.net/"+tenantA+"/", tenantA), 401, token.WrongIssuer, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := options()
			opts.AllowedTenants = tt.allowed
			a, err := Compile(load(t, "multitenant.yaml"), opts)
			if err != nil {
				t.Fatal(err)
			}
			res := a.Authenticate(context.Background(), get("/", "Authorization", "Bearer "+tt.tok))
			checkOutcome(t, authCase{status: tt.status, code: tt.code, principal: tt.princ}, res)
		})
	}
}
