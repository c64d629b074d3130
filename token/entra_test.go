package token

import (
	"context"
	"strings"
	"testing"
)

// Entra ID rules (aad-jwt.md §1.3, §4, §6, §8, §9): tenant templates, key
// issuers, and the details that say what to change.

const (
	tenantA  = "f645ad92-e38d-4d1a-b510-d1b09a74a8ca"
	tenantB  = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	msaTid   = "9188040d-6c67-4c5b-b112-36a304b66dad"
	v2Tmpl   = "https://login.microsoftonline.com/{tenantid}/v2.0"
	appID    = "6e74172b-be56-4843-9ff4-e66a39bb12e3"
	graphApp = "00000003-0000-0000-c000-000000000000"
)

func v1Issuer(tid string) string { return "https://sts.windows.net/" + tid + "/" }
func v2Issuer(tid string) string { return "https://login.microsoftonline.com/" + tid + "/v2.0" }

func entraToken(t *testing.T, header, claims map[string]any) string {
	t.Helper()
	h := map[string]any{"typ": "JWT", "alg": "RS256", "kid": "entra"}
	for k, v := range header {
		h[k] = v
	}
	c := map[string]any{
		"iss": v2Issuer(tenantA), "tid": tenantA, "aud": appID, "sub": "s",
		"iat": testNow.Unix(), "nbf": testNow.Unix(), "exp": testNow.Unix() + 3600,
	}
	for k, v := range claims {
		if v == nil {
			delete(c, k)
			continue
		}
		c[k] = v
	}
	return mint(t, testRSAKey(), h, c)
}

// entraKey is the signing key as Entra's v2 JWKS publishes it.
func entraKey(issuer string) Key {
	return Key{ID: "entra", Public: &testRSAKey().PublicKey, Use: "sig", Issuer: issuer}
}

type entraCase struct {
	name       string
	issuers    []string
	tenants    []string
	audiences  []string
	key        Key
	header     map[string]any
	claims     map[string]any
	want       Code
	detailHas  []string // substrings the detail must contain
	detailLack []string // substrings it must not contain
}

func runEntra(t *testing.T, cases []entraCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			key := c.key
			if key.Public == nil {
				key = entraKey(v2Tmpl)
			}
			audiences := c.audiences
			if audiences == nil {
				audiences = []string{appID}
			}
			v, err := NewVerifier(Config{
				Issuers:        c.issuers,
				AllowedTenants: c.tenants,
				Audiences:      audiences,
				Keys:           StaticKeys{key},
				Now:            fixedNow,
			})
			if err != nil {
				t.Fatal(err)
			}
			_, err = v.Verify(context.Background(), entraToken(t, c.header, c.claims))
			if got := code(err); got != c.want {
				t.Fatalf("got %s (%v), want %s", got, err, c.want)
			}
			if err == nil {
				return
			}
			detail := err.(*Error).Detail
			if strings.ContainsAny(detail, "\r\n") {
				t.Errorf("detail is not one line: %q", detail)
			}
			for _, s := range c.detailHas {
				if !strings.Contains(detail, s) {
					t.Errorf("detail %q lacks %q", detail, s)
				}
			}
			for _, s := range c.detailLack {
				if strings.Contains(detail, s) {
					t.Errorf("detail %q has %q", detail, s)
				}
			}
		})
	}
}

func TestEntraTenantTemplates(t *testing.T) {
	runEntra(t, []entraCase{
		{name: "template_any_tenant", issuers: []string{v2Tmpl}, want: "ok"},
		{name: "template_upper_case_guid", issuers: []string{v2Tmpl},
			claims: map[string]any{"iss": v2Issuer(strings.ToUpper(tenantA)), "tid": strings.ToUpper(tenantA)}, want: "ok"},
		{name: "template_tid_differs", issuers: []string{v2Tmpl}, key: entraKey(""),
			claims:    map[string]any{"tid": tenantB},
			want:      WrongIssuer,
			detailHas: []string{"tid \"" + tenantB + "\" differs from the tenant \"" + tenantA + "\" in iss"}},
		{name: "template_no_tid", issuers: []string{v2Tmpl}, key: entraKey(""),
			claims: map[string]any{"tid": nil}, want: WrongIssuer, detailHas: []string{"no tid claim"}},
		{name: "template_braced_guid", issuers: []string{v2Tmpl}, key: entraKey(""),
			claims:    map[string]any{"iss": v2Issuer("{" + tenantA + "}"), "tid": "{" + tenantA + "}"},
			want:      WrongIssuer,
			detailHas: []string{"not one"}},
		{name: "template_urn_uuid", issuers: []string{v2Tmpl}, key: entraKey(""),
			claims: map[string]any{"iss": v2Issuer("urn:uuid:" + tenantA), "tid": "urn:uuid:" + tenantA}, want: WrongIssuer},
		{name: "allowed_tenant", issuers: []string{v2Tmpl}, tenants: []string{strings.ToUpper(tenantA)}, want: "ok"},
		{name: "tenant_not_allowed", issuers: []string{v2Tmpl}, tenants: []string{tenantB},
			want: WrongIssuer, detailHas: []string{"not one of the allowed tenants"}},
		{name: "exact_issuer", issuers: []string{v2Issuer(tenantA)}, want: "ok"},
		{name: "other_tenant_exact", issuers: []string{v2Issuer(tenantB)}, key: entraKey(""),
			want: WrongIssuer, detailHas: []string{`token iss "` + v2Issuer(tenantA) + `" is not accepted`}},
		{name: "trailing_slash_hint", issuers: []string{v2Issuer(tenantA) + "/"},
			want: WrongIssuer, detailHas: []string{"only by a trailing \"/\""}},
	})
}

func TestEntraKeyIssuer(t *testing.T) {
	runEntra(t, []entraCase{
		// §4: the key's issuer, with the token's tid in place, must be iss.
		{name: "template_key_fits_any_tenant", claims: map[string]any{"iss": v2Issuer(tenantB), "tid": tenantB}, want: "ok"},
		{name: "template_key_tid_differs", claims: map[string]any{"tid": tenantB},
			want: WrongIssuer, detailHas: []string{"is published for issuer"}},
		{name: "template_key_no_tid", claims: map[string]any{"tid": nil},
			want: WrongIssuer, detailHas: []string{"no tid to put in place"}},
		{name: "concrete_key_issuer", key: entraKey(v2Issuer(msaTid)), claims: map[string]any{"iss": v2Issuer(msaTid), "tid": msaTid}, want: "ok"},
		{name: "msa_key_signing_work_tenant", key: entraKey(v2Issuer(msaTid)), want: WrongIssuer},
		{name: "key_without_issuer", key: entraKey(""), claims: map[string]any{"iss": "https://elsewhere.example"}, want: "ok"},
		{name: "token_without_iss", claims: map[string]any{"iss": nil}, want: WrongIssuer},
		// The contract compares strictly: v2 keys do not sign v1 tokens
		// (Microsoft.IdentityModel also accepts the v2 form of a v1 issuer).
		{name: "v1_token_v2_key", claims: map[string]any{"iss": v1Issuer(tenantA)},
			want: WrongIssuer, detailHas: []string{"v1 tokens are signed with the v1 keys", "discovery/keys"}},
		// A bad signature is reported before the key's issuer.
		{name: "bad_signature_first", key: Key{ID: "entra", Public: &testRSAKey2().PublicKey, Issuer: v2Issuer(msaTid)}, want: BadSignature},
	})
}

func TestEntraHints(t *testing.T) {
	runEntra(t, []entraCase{
		{name: "v1_token_v2_accepted", issuers: []string{v2Issuer(tenantA)}, key: entraKey(""),
			claims: map[string]any{"iss": v1Issuer(tenantA)},
			want:   WrongIssuer,
			detailHas: []string{`token iss "` + v1Issuer(tenantA) + `" (v1) but only "` + v2Issuer(tenantA) + `" (v2) is accepted`,
				"accessTokenAcceptedVersion: 2", "add the v1 issuer"}},
		{name: "v1_token_v2_template_accepted", issuers: []string{v2Tmpl}, key: entraKey(""),
			claims:    map[string]any{"iss": v1Issuer(tenantA)},
			want:      WrongIssuer,
			detailHas: []string{`(v1) but only "` + v2Tmpl + `" (v2)`}},
		{name: "v2_token_v1_accepted", issuers: []string{v1Issuer(tenantA)}, key: entraKey(""),
			want: WrongIssuer, detailHas: []string{"(v2) but only", "add the v2 issuer"}},
		{name: "graph_token_with_nonce", header: map[string]any{"nonce": "abc"},
			claims: map[string]any{"aud": graphApp}, key: Key{ID: "entra", Public: &testRSAKey2().PublicKey},
			want:      BadSignature,
			detailHas: []string{"Microsoft Graph access token", "its header has a nonce", "api://" + appID + "/.default"}},
		{name: "graph_token_signature_valid", claims: map[string]any{"aud": "https://graph.microsoft.com"},
			want: WrongAudience, detailHas: []string{"Microsoft Graph access token", `aud "https://graph.microsoft.com"`}},
		{name: "graph_scope_from_app_id_uri", audiences: []string{"api://orders"}, claims: map[string]any{"aud": graphApp},
			want: WrongAudience, detailHas: []string{"scope api://orders/.default"}},
		{name: "workload_identity_token", issuers: []string{v2Tmpl}, key: Key{ID: "other", Public: &testRSAKey2().PublicKey},
			claims:    map[string]any{"iss": "https://oidc.prod-aks.azure.com/x/", "aud": "api://AzureADTokenExchange", "sub": "system:serviceaccount:ns:sa"},
			want:      UnknownKID,
			detailHas: []string{"no key has kid", "AKS workload identity", "exchange it at Entra ID"}},
		{name: "app_id_uri_vs_client_id", claims: map[string]any{"aud": "api://" + appID},
			want: WrongAudience, detailHas: []string{"App ID URI form of the accepted client ID", `add "api://` + appID + `"`}},
		{name: "client_id_vs_app_id_uri", audiences: []string{"api://" + appID},
			want: WrongAudience, detailHas: []string{"client ID form of the accepted App ID URI"}},
		{name: "guid_vs_custom_uri", audiences: []string{"api://orders"},
			want: WrongAudience, detailHas: []string{"accept both forms"}},
		{name: "id_token", audiences: []string{"api://orders"}, claims: map[string]any{"aud": "api://frontend", "nonce": "n"},
			want: WrongAudience, detailHas: []string{"ID token"}},
		{name: "plain_wrong_audience", audiences: []string{"api://orders"}, claims: map[string]any{"aud": "api://billing"},
			want: WrongAudience, detailLack: []string{"Graph", "ID token", "both forms"}},
	})
}

func TestNewVerifierRejectsBadConfig(t *testing.T) {
	keys := StaticKeys{}
	for name, cfg := range map[string]Config{
		"no_keys":           {},
		"empty_issuer":      {Keys: keys, Issuers: []string{""}},
		"two_placeholders":  {Keys: keys, Issuers: []string{"https://{tenantid}/{tenantid}"}},
		"tenant_not_guid":   {Keys: keys, Issuers: []string{v2Tmpl}, AllowedTenants: []string{"contoso.com"}},
		"tenants_no_tmpl":   {Keys: keys, Issuers: []string{v2Issuer(tenantA)}, AllowedTenants: []string{tenantA}},
		"tenant_with_brace": {Keys: keys, Issuers: []string{v2Tmpl}, AllowedTenants: []string{"{" + tenantA + "}"}},
	} {
		if _, err := NewVerifier(cfg); err == nil {
			t.Errorf("%s: NewVerifier accepted %+v", name, cfg)
		}
	}
}
