package authn

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	securityv1beta1 "istio.io/api/security/v1beta1"

	"github.com/idgate/idgate/mint"
	"github.com/idgate/idgate/policy"
	"github.com/idgate/idgate/request"
	"github.com/idgate/idgate/token"
)

// The issuers of the test policies.
const (
	iss1     = "test-issuer-1@istio.io"
	iss2     = "test-issuer-2@istio.io"
	entra    = "https://login.microsoftonline.com/11111111-2222-3333-4444-555555555555/v2.0"
	entraAud = "api://orders"
)

// now is the time every test authenticates at.
var now = time.Unix(1_750_000_000, 0)

// keys holds one signing key per issuer, made once for all tests: RS256
// for Entra ID as it signs, ES256 for the others (RSA key generation is
// slow).
var keys = sync.OnceValue(func() map[string]*mint.Key {
	m := map[string]*mint.Key{}
	for iss, alg := range map[string]string{iss1: "ES256", iss2: "ES256", entra: "RS256"} {
		k, err := mint.NewKey(alg)
		if err != nil {
			panic(err)
		}
		m[iss] = k
	}
	return m
})

// options gives every rule the key of its issuer, and the fixed time.
func options() Options {
	return Options{
		Keys: func(rule *securityv1beta1.JWTRule) (token.KeySource, error) {
			iss := rule.GetIssuer()
			if strings.Contains(iss, token.TenantPlaceholder) {
				iss = entra
			}
			k, ok := keys()[iss]
			if !ok {
				return nil, fmt.Errorf("no test key for issuer %q", rule.GetIssuer())
			}
			return token.StaticKeys{k.PublicKey()}, nil
		},
		Now: func() time.Time { return now },
	}
}

func load(t testing.TB, file string) []*policy.Document {
	t.Helper()
	path := filepath.Join("testdata", file)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	docs, err := policy.Parse(path, data)
	if err != nil {
		t.Fatalf("policy.Parse(%s): %v", path, err)
	}
	return docs
}

func compile(t testing.TB, file string) *Authenticator {
	t.Helper()
	a, err := Compile(load(t, file), options())
	if err != nil {
		t.Fatalf("Compile(%s): %v", file, err)
	}
	return a
}

// claims returns a valid claim set of iss for subject sub: issued a minute
// ago, expiring in an hour, with the extra claims set (a nil value
// deletes a claim).
func claims(iss, sub string, extra map[string]any) map[string]any {
	c := map[string]any{
		"iss": iss,
		"sub": sub,
		"iat": json.Number(fmt.Sprint(now.Unix() - 60)),
		"exp": json.Number(fmt.Sprint(now.Unix() + 3600)),
	}
	for k, v := range extra {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

// sign signs claims with the key of signer (an issuer).
func sign(t testing.TB, signer string, c map[string]any) string {
	t.Helper()
	raw, err := keys()[signer].Sign(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// tokens are the tokens the table tests send, made once per test.
type tokens struct {
	t1, t1b, t1foo, t2, t1expired, t1skew, t1early, t1badsig, unknown string
	e, eWrongAud, eExpired                                            string
}

func newTokens(t testing.TB) tokens {
	impostor, err := keys()[iss1].Impostor()
	if err != nil {
		t.Fatal(err)
	}
	badsig, err := impostor.Sign(claims(iss1, "sub-1", nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	return tokens{
		t1:        sign(t, iss1, claims(iss1, "sub-1", nil)),
		t1b:       sign(t, iss1, claims(iss1, "sub-1b", nil)),
		t1foo:     sign(t, iss1, claims(iss1, "sub-1", map[string]any{"aud": "foo"})),
		t2:        sign(t, iss2, claims(iss2, "sub-2", nil)),
		t1expired: sign(t, iss1, claims(iss1, "sub-1", map[string]any{"exp": json.Number(fmt.Sprint(now.Unix() - 3600))})),
		t1skew:    sign(t, iss1, claims(iss1, "sub-1", map[string]any{"exp": json.Number(fmt.Sprint(now.Unix() - 30))})),
		t1early:   sign(t, iss1, claims(iss1, "sub-1", map[string]any{"nbf": json.Number(fmt.Sprint(now.Unix() + 3600))})),
		t1badsig:  badsig,
		unknown:   sign(t, iss1, claims("https://unknown.example", "sub-x", nil)),
		e:         sign(t, entra, claims(entra, "alice", map[string]any{"aud": entraAud})),
		eWrongAud: sign(t, entra, claims(entra, "alice", map[string]any{"aud": "api://billing"})),
		eExpired: sign(t, entra, claims(entra, "alice", map[string]any{
			"aud": entraAud, "exp": json.Number(fmt.Sprint(now.Unix() - 3600)),
		})),
	}
}

// req builds request attributes for method and target ("/path?query"),
// with header name/value pairs.
func req(method, target string, headers ...string) *request.Attributes {
	path, query, _ := strings.Cut(target, "?")
	a := &request.Attributes{Method: method, Scheme: "http", Host: "example.com", Path: path, Query: query, Header: http.Header{}}
	for i := 0; i+1 < len(headers); i += 2 {
		a.Header.Add(headers[i], headers[i+1])
	}
	return a
}

func get(target string, headers ...string) *request.Attributes {
	return req(http.MethodGet, target, headers...)
}
