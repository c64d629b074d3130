package authn

import (
	"context"
	"fmt"
	"net/http"
	"reflect"
	"testing"

	"github.com/idgate/idgate/request"
	"github.com/idgate/idgate/token"
)

// A case of TestAuthenticate: a request against one policy file and the
// outcome Istio gives it. source cites where the expected outcome comes
// from: a section of istio-semantics.md (shared/reference), an Istio
// integration test (tests/integration/security/jwt_test.go subtest) or
// Envoy's jwt_authn sources.
type authCase struct {
	name      string
	source    string
	policy    string
	req       func(tk tokens) *request.Attributes
	status    int
	code      token.Code // the rejection code; "" when status is 200
	principal string     // the identity's principal; "" for anonymous
}

func TestAuthenticate(t *testing.T) {
	tk := newTokens(t)
	bearer := func(tok string) string { return "Bearer " + tok }
	cases := []authCase{
		// Default locations (§0 rule 6, §3.1 "none of the three").
		{
			name: "no token is anonymous", source: "§3.5; jwt_test.go no-token-noauthz",
			policy: "default.yaml", req: func(tokens) *request.Attributes { return get("/") },
			status: 200,
		},
		{
			name: "Authorization Bearer", source: "§0 rule 6; jwt_test.go valid-token-noauthz",
			policy: "default.yaml", req: func(tk tokens) *request.Attributes { return get("/", "Authorization", bearer(tk.e)) },
			status: 200, principal: entra + "/alice",
		},
		{
			name: "access_token query parameter", source: "§0 rule 6; RFC 6750 §2.3",
			policy: "default.yaml", req: func(tk tokens) *request.Attributes { return get("/api?x=1&access_token=" + tk.e) },
			status: 200, principal: entra + "/alice",
		},
		{
			name: "percent-encoded parameter name", source: "Envoy QueryParamsMulti::parseAndDecodeQueryString decodes names and values",
			policy: "default.yaml", req: func(tk tokens) *request.Attributes { return get("/?access%5Ftoken=" + tk.e + "&x=%zz") },
			status: 200, principal: entra + "/alice",
		},
		{
			name: "Bearer scheme in any case", source: "RFC 9110 §11.1; jwt-attacks.md F1 (idgate reads it, Envoy matches \"Bearer \" exactly)",
			policy: "default.yaml", req: func(tk tokens) *request.Attributes { return get("/", "Authorization", "bearer "+tk.e) },
			status: 200, principal: entra + "/alice",
		},
		{
			name: "white space around the value", source: "RFC 9110 §5.5 (a field value has no surrounding white space)",
			policy: "default.yaml", req: func(tk tokens) *request.Attributes { return get("/", "Authorization", " \tBearer "+tk.e+" \t") },
			status: 200, principal: entra + "/alice",
		},
		{
			name: "other scheme is no token", source: "jwt-attacks.md F1; Envoy extractor.cc (prefix not found: skipped)",
			policy: "default.yaml", req: func(tokens) *request.Attributes { return get("/", "Authorization", "Basic dXNlcjpwYXNz") },
			status: 200,
		},
		{
			name: "garbage bearer token", source: "§3.5 `Authorization: Bearer deadbeef`",
			policy: "default.yaml", req: func(tokens) *request.Attributes { return get("/", "Authorization", "Bearer deadbeef") },
			status: 401, code: token.Malformed,
		},
		{
			name: "expired", source: "§3.5; jwt_test.go expired-token-noauthz",
			policy: "default.yaml", req: func(tk tokens) *request.Attributes { return get("/", "Authorization", bearer(tk.eExpired)) },
			status: 401, code: token.Expired,
		},
		{
			name: "wrong audience is 403", source: "§0 rule 4, §3.5; jwt_test.go invalid-aud",
			policy: "default.yaml", req: func(tk tokens) *request.Attributes { return get("/", "Authorization", bearer(tk.eWrongAud)) },
			status: 403, code: token.WrongAudience,
		},
		{
			name: "unknown issuer is 401", source: "§0 rule 3; envoyproxy/envoy#15194",
			policy: "default.yaml", req: func(tk tokens) *request.Attributes { return get("/", "Authorization", bearer(tk.t1)) },
			status: 401, code: token.WrongIssuer,
		},
		{
			name: "token in a header no rule reads is ignored", source: "§0 rule 6, §3.3",
			policy: "default.yaml", req: func(tk tokens) *request.Attributes { return get("/", "X-Jwt-Token", bearer(tk.eExpired)) },
			status: 200,
		},

		// CORS preflight (§1.3 is_cors_preflight; Istio sets bypass_cors_preflight).
		{
			name: "CORS preflight bypasses a bad token", source: "§3.5; jwt_test.go expired-token-cors-preflight-request-allowed",
			policy: "default.yaml", req: func(tk tokens) *request.Attributes {
				return req("OPTIONS", "/", "Authorization", bearer(tk.eExpired), "Origin", "https://istio.io", "Access-Control-Request-Method", "POST")
			},
			status: 200,
		},
		{
			name: "OPTIONS without Origin is not a preflight", source: "§3.5; jwt_test.go expired-token-bad-cors-preflight-request-rejected",
			policy: "default.yaml", req: func(tk tokens) *request.Attributes {
				return req("OPTIONS", "/", "Authorization", bearer(tk.eExpired), "Access-Control-Request-Method", "POST")
			},
			status: 401, code: token.Expired,
		},

		// Custom locations (headers-params.yaml).
		{
			name: "custom header with prefix", source: "§3.1 fromHeaders; jwt_test.go valid-header",
			policy: "headers-params.yaml", req: func(tk tokens) *request.Attributes { return get("/", "X-Jwt-Token", bearer(tk.t1)) },
			status: 200, principal: iss1 + "/sub-1",
		},
		{
			name: "second custom header with its own prefix", source: "jwt_test.go valid-header-secondary",
			policy: "headers-params.yaml", req: func(tk tokens) *request.Attributes { return get("/", "Auth-Token", "Token "+tk.t1) },
			status: 200, principal: iss1 + "/sub-1",
		},
		{
			name: "custom header without its prefix holds no token", source: "§8 open question, settled by Envoy extractor.cc: a value without the prefix is skipped",
			policy: "headers-params.yaml", req: func(tk tokens) *request.Attributes { return get("/", "Auth-Token", tk.t1expired) },
			status: 200,
		},
		{
			name: "prefix found inside the value", source: "Envoy extractor.cc (value_prefix searched anywhere in the value)",
			policy: "headers-params.yaml", req: func(tk tokens) *request.Attributes { return get("/", "Auth-Token", "Scheme Token "+tk.t1) },
			status: 200, principal: iss1 + "/sub-1",
		},
		{
			name: "custom header without prefix takes the whole value", source: "§3.1 fromHeaders (empty prefix)",
			policy: "headers-params.yaml", req: func(tk tokens) *request.Attributes { return get("/", "X-Raw-Token", tk.t1) },
			status: 200, principal: iss1 + "/sub-1",
		},
		{
			name: "header name is case-insensitive", source: "RFC 9110 §5.1; Envoy LowerCaseString",
			policy: "headers-params.yaml", req: func(tk tokens) *request.Attributes {
				a := get("/")
				a.Header["X-Jwt-Token"] = []string{"Bearer " + tk.t1}
				return a
			},
			status: 200, principal: iss1 + "/sub-1",
		},
		{
			name: "default Authorization not read when fromHeaders is set", source: "§0 rule 6; jwt_test.go invalid-header",
			policy: "headers-params.yaml", req: func(tk tokens) *request.Attributes { return get("/", "Authorization", bearer(tk.t1expired)) },
			status: 200,
		},
		{
			name: "custom query parameter", source: "jwt_test.go valid-params",
			policy: "headers-params.yaml", req: func(tk tokens) *request.Attributes { return get("/valid-token?token=" + tk.t1) },
			status: 200, principal: iss1 + "/sub-1",
		},
		{
			name: "second custom query parameter", source: "jwt_test.go valid-params-secondary",
			policy: "headers-params.yaml", req: func(tk tokens) *request.Attributes { return get("/valid-token?secondary_token=" + tk.t1) },
			status: 200, principal: iss1 + "/sub-1",
		},
		{
			name: "query parameter no rule reads", source: "jwt_test.go invalid-params",
			policy: "headers-params.yaml", req: func(tk tokens) *request.Attributes { return get("/valid-token?token_value=" + tk.t1expired) },
			status: 200,
		},
		{
			name: "access_token not read when fromParams is set", source: "§0 rule 6",
			policy: "headers-params.yaml", req: func(tk tokens) *request.Attributes { return get("/?access_token=" + tk.t1expired) },
			status: 200,
		},
		{
			name: "cookie", source: "§3.1 fromCookies (Istio ≥1.21)",
			policy: "headers-params.yaml", req: func(tk tokens) *request.Attributes { return get("/", "Cookie", "theme=dark; session="+tk.t1) },
			status: 200, principal: iss1 + "/sub-1",
		},
		{
			name: "quoted cookie", source: "RFC 6265 §4.1.1; Envoy Utility::parseCookies",
			policy: "headers-params.yaml", req: func(tk tokens) *request.Attributes { return get("/", "Cookie", `session="`+tk.t1+`"`) },
			status: 200, principal: iss1 + "/sub-1",
		},
		{
			name: "expired cookie token", source: "§3.4 step 3",
			policy: "headers-params.yaml", req: func(tk tokens) *request.Attributes { return get("/", "Cookie", "session="+tk.t1expired) },
			status: 401, code: token.Expired,
		},

		// Several tokens (§3.3).
		{
			name: "the same token twice", source: "§3.3; jwt_test.go valid-token-set",
			policy: "headers-params.yaml", req: func(tk tokens) *request.Attributes {
				return get("/valid-token?token=" + tk.t1 + "&secondary_token=" + tk.t1)
			},
			status: 200, principal: iss1 + "/sub-1",
		},
		{
			name: "a valid and an expired token", source: "§3.3; jwt_test.go invalid-token-set",
			policy: "headers-params.yaml", req: func(tk tokens) *request.Attributes {
				return get("/valid-token?token=" + tk.t1 + "&secondary_token=" + tk.t1expired)
			},
			status: 401, code: token.Expired,
		},
		{
			name: "two different valid tokens", source: "§3.3 (principal undefined in Istio); jwt-attacks.md F2: idgate rejects",
			policy: "headers-params.yaml", req: func(tk tokens) *request.Attributes {
				return get("/?token="+tk.t1, "X-Jwt-Token", bearer(tk.t1b))
			},
			status: 401, code: MultipleTokens,
		},
		{
			name: "two Authorization headers with different tokens", source: "RFC 9110 §5.3; jwt-attacks.md F2",
			policy: "default.yaml", req: func(tk tokens) *request.Attributes {
				return get("/", "Authorization", bearer(tk.e), "Authorization", bearer(tk.eWrongAud))
			},
			status: 403, code: token.WrongAudience,
		},
		{
			name: "a bad signature", source: "§3.5 bad signature",
			policy: "headers-params.yaml", req: func(tk tokens) *request.Attributes { return get("/", "X-Raw-Token", tk.t1badsig) },
			status: 401, code: token.BadSignature,
		},
		{
			name: "expiry within the 60 s skew", source: "§0 rule 5",
			policy: "headers-params.yaml", req: func(tk tokens) *request.Attributes { return get("/", "X-Raw-Token", tk.t1skew) },
			status: 200, principal: iss1 + "/sub-1",
		},
		{
			name: "not yet valid", source: "§3.4 step 3",
			policy: "headers-params.yaml", req: func(tk tokens) *request.Attributes { return get("/", "X-Raw-Token", tk.t1early) },
			status: 401, code: token.NotYetValid,
		},

		// Merged RequestAuthentications (aud.yaml, §2, §3.2).
		{
			name: "audience not accepted", source: "jwt_test.go invalid-aud",
			policy: "aud.yaml", req: func(tk tokens) *request.Attributes { return get("/", "Authorization", bearer(tk.t1)) },
			status: 403, code: token.WrongAudience,
		},
		{
			name: "audience accepted", source: "jwt_test.go valid-aud",
			policy: "aud.yaml", req: func(tk tokens) *request.Attributes { return get("/", "Authorization", bearer(tk.t1foo)) },
			status: 200, principal: iss1 + "/sub-1",
		},
		{
			name: "policies are combined", source: "§3.2; jwt_test.go verify-policies-are-combined",
			policy: "aud.yaml", req: func(tk tokens) *request.Attributes { return get("/", "Authorization", bearer(tk.t2)) },
			status: 200, principal: iss2 + "/sub-2",
		},
		{
			name: "unknown issuer with several rules", source: "§0 rule 3",
			policy: "aud.yaml", req: func(tk tokens) *request.Attributes { return get("/", "Authorization", bearer(tk.unknown)) },
			status: 401, code: token.WrongIssuer,
		},

		// Several rules, the same issuer at different locations (two-issuers.yaml).
		{
			name: "issuer 2 at the default header", source: "§3.2 requires_any",
			policy: "two-issuers.yaml", req: func(tk tokens) *request.Attributes { return get("/", "Authorization", bearer(tk.t2)) },
			status: 200, principal: iss2 + "/sub-2",
		},
		{
			name: "issuer 1 at its custom header", source: "§3.2; §3.3 each provider its own locations",
			policy: "two-issuers.yaml", req: func(tk tokens) *request.Attributes { return get("/", "X-Issuer-1", tk.t1) },
			status: 200, principal: iss1 + "/sub-1",
		},
		{
			name: "issuer 1 at the default header too", source: "§3.2",
			policy: "two-issuers.yaml", req: func(tk tokens) *request.Attributes { return get("/?access_token=" + tk.t1) },
			status: 200, principal: iss1 + "/sub-1",
		},
		{
			name: "issuer 2 at issuer 1's header is an unknown issuer", source: "§0 rule 3; Envoy extractor.cc JwtIssuerChecker",
			policy: "two-issuers.yaml", req: func(tk tokens) *request.Attributes { return get("/", "X-Issuer-1", tk.t2) },
			status: 401, code: token.WrongIssuer,
		},
		{
			name: "a real failure beats unknown issuers", source: "§3.2 (Envoy prefers a real failure, envoyproxy/envoy#15194)",
			policy: "two-issuers.yaml", req: func(tk tokens) *request.Attributes { return get("/", "Authorization", bearer(tk.t1expired)) },
			status: 401, code: token.Expired,
		},
		{
			name: "garbage with several rules", source: "§3.4 step 1",
			policy: "two-issuers.yaml", req: func(tokens) *request.Attributes { return get("/", "X-Issuer-1", "not.a.jwt") },
			status: 401, code: token.Malformed,
		},
	}
	var hits uint64
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := compile(t, c.policy)
			got := a.Authenticate(context.Background(), c.req(tk))
			checkOutcome(t, c, got)

			// With a verified-token cache: the same outcome when the token
			// is first seen and when it is answered from the cache.
			cache := NewCache(CacheConfig{})
			opts := options()
			opts.Cache = cache
			ca, err := Compile(load(t, c.policy), opts)
			if err != nil {
				t.Fatal(err)
			}
			for i := range 3 {
				sameOutcome(t, fmt.Sprintf("cached, request %d", i+1), got, ca.Authenticate(context.Background(), c.req(tk)))
			}
			hits += cache.Stats().Hits
		})
	}
	if hits == 0 {
		t.Error("no case was answered from the cache")
	}
}

// sameOutcome checks that got, from an Authenticator with a cache, is the
// outcome want, from one without. A cache hit has no explanation
// (Tokens).
func sameOutcome(t *testing.T, what string, want, got Result) {
	t.Helper()
	if got.Tokens == nil {
		got.Tokens = want.Tokens
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got  %+v\n want %+v", what, got, want)
		if got.Identity != nil && want.Identity != nil {
			t.Errorf("identity:\n got  %+v\n want %+v", *got.Identity, *want.Identity)
		}
	}
}

func checkOutcome(t *testing.T, c authCase, got Result) {
	t.Helper()
	if got.Status != c.status {
		t.Errorf("status = %d, want %d (%s); err: %v", got.Status, c.status, c.source, got.Err)
	}
	var code token.Code
	if got.Err != nil {
		code = got.Err.Code
	}
	if code != c.code {
		t.Errorf("code = %q, want %q (%s); err: %v", code, c.code, c.source, got.Err)
	}
	var principal string
	if got.Identity != nil {
		principal = got.Identity.Principal()
	}
	if principal != c.principal {
		t.Errorf("principal = %q, want %q (%s)", principal, c.principal, c.source)
	}
	if got.Status != http.StatusOK && got.Identity != nil {
		t.Errorf("rejected request has an identity: %+v", got.Identity)
	}
}
