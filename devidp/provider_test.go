package devidp

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/idgate/idgate/token"
)

var update = flag.Bool("update", false, "rewrite golden files")

func TestDiscoveryGolden(t *testing.T) {
	i := newIDP(t, nil, Options{BaseURL: "http://127.0.0.1:9400"})
	for _, tc := range []struct{ path, golden string }{
		{"/" + tenantID + "/v2.0/.well-known/openid-configuration", "discovery-v2-tenant.json"},
		{"/" + tenantID + "/.well-known/openid-configuration", "discovery-v1-tenant.json"},
		{"/common/v2.0/.well-known/openid-configuration", "discovery-v2-common.json"},
		{"/organizations/v2.0/.well-known/openid-configuration", "discovery-v2-organizations.json"},
		{"/common/.well-known/openid-configuration", "discovery-v1-common.json"},
		{"/contoso-dev.onmicrosoft.com/v2.0/.well-known/openid-configuration", "discovery-v2-domain.json"},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			resp, body := i.get(t, tc.path)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET %s: %d %s", tc.path, resp.StatusCode, body)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type %q", ct)
			}
			golden := filepath.Join("testdata", tc.golden)
			if *update {
				if err := os.WriteFile(golden, body, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(body, want) {
				t.Errorf("GET %s differs from %s (go test -update to accept):\n%s", tc.path, golden, body)
			}
		})
	}
}

func TestDiscoveryUnknownTenant(t *testing.T) {
	i := newIDP(t, nil, Options{})
	for _, path := range []string{
		"/11111111-2222-3333-4444-555555555555/v2.0/.well-known/openid-configuration",
		"/consumers/discovery/v2.0/keys",
		"/nope/oauth2/v2.0/token",
	} {
		resp, body := i.get(t, path)
		if path == "/nope/oauth2/v2.0/token" {
			var status int
			var m map[string]any
			status, m = i.post(t, path, url.Values{"grant_type": {"client_credentials"}})
			resp.StatusCode, body = status, []byte(m["error_description"].(string))
		}
		if resp.StatusCode != http.StatusBadRequest || !bytes.Contains(body, []byte("AADSTS90002")) {
			t.Errorf("%s: %d %s, want 400 AADSTS90002", path, resp.StatusCode, body)
		}
	}
}

func TestJWKS(t *testing.T) {
	i := newIDP(t, nil, Options{})
	for _, tc := range []struct {
		path, issuer string
	}{
		{"/" + tenantID + "/discovery/v2.0/keys", v2Issuer},
		{"/common/discovery/v2.0/keys", "https://login.microsoftonline.com/{tenantid}/v2.0"},
		{"/" + tenantID + "/discovery/keys", ""},
	} {
		resp, body := i.get(t, tc.path)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d", tc.path, resp.StatusCode)
		}
		var set struct {
			Keys []map[string]any `json:"keys"`
		}
		if err := json.Unmarshal(body, &set); err != nil {
			t.Fatal(err)
		}
		if len(set.Keys) != 2 {
			t.Fatalf("%s: %d keys, want 2 (the signing key and the next one)", tc.path, len(set.Keys))
		}
		for _, k := range set.Keys {
			if _, ok := k["alg"]; ok {
				t.Errorf("%s: key %v has alg; Entra publishes none", tc.path, k["kid"])
			}
			if k["kty"] != "RSA" || k["use"] != "sig" || k["kid"] == "" || k["n"] == nil || k["e"] == nil {
				t.Errorf("%s: key %v lacks kty RSA, use sig, kid, n or e", tc.path, k)
			}
			if got, _ := k["issuer"].(string); got != tc.issuer {
				t.Errorf("%s: key issuer %q, want %q", tc.path, got, tc.issuer)
			}
		}
		keys, err := token.ParseJWKS(body)
		if err != nil || len(keys) != 2 {
			t.Fatalf("%s: ParseJWKS: %d keys, %v", tc.path, len(keys), err)
		}
		if keys[0].ID != i.SigningKeyID() {
			t.Errorf("%s: first key %s, want the signing key %s", tc.path, keys[0].ID, i.SigningKeyID())
		}
	}
}

// withVersion returns the built-in directory with the API's
// accessTokenAcceptedVersion set.
func withVersion(v int) *Directory {
	d := DefaultDirectory()
	d.Tenants[0].app("orders-api").AccessTokenAcceptedVersion = v
	return d
}

func TestClientCredentials(t *testing.T) {
	for _, tc := range []struct {
		name       string
		apiVersion int
		path       string
		form       url.Values
		wantAud    string
	}{
		{"v2 API from v2 endpoint", 2, "/" + tenantID + "/oauth2/v2.0/token", url.Values{"scope": {orderScopeAll}}, apiClientID},
		{"v2 API asked by client ID", 2, "/" + tenantID + "/oauth2/v2.0/token", url.Values{"scope": {apiClientID + "/.default"}}, apiClientID},
		{"v2 API from v1 endpoint", 2, "/" + tenantID + "/oauth2/token", url.Values{"resource": {apiAppIDURI}}, apiClientID},
		{"v1 API by App ID URI", 1, "/" + tenantID + "/oauth2/token", url.Values{"resource": {apiAppIDURI}}, apiAppIDURI},
		{"v1 API by client ID", 1, "/" + tenantID + "/oauth2/token", url.Values{"resource": {apiClientID}}, apiClientID},
		{"v1 API from v2 endpoint", 1, "/organizations/oauth2/v2.0/token", url.Values{"scope": {orderScopeAll}}, apiAppIDURI},
	} {
		t.Run(tc.name, func(t *testing.T) {
			i := newIDP(t, withVersion(tc.apiVersion), Options{})
			form := url.Values{"grant_type": {"client_credentials"}, "client_id": {clientID}, "client_secret": {"dev"}}
			for k, v := range tc.form {
				form[k] = v
			}
			resp := i.tokenFor(t, tc.path, form)
			if resp["token_type"] != "Bearer" {
				t.Errorf("token_type %v", resp["token_type"])
			}
			if _, ok := resp["refresh_token"]; ok {
				t.Error("app-only response has a refresh token")
			}
			c := claims(t, resp["access_token"])
			wantString(t, c, "aud", tc.wantAud)
			wantString(t, c, "tid", tenantID)
			wantString(t, c, "oid", clientObject)
			wantString(t, c, "sub", clientObject)
			wantString(t, c, "idtyp", "app")
			wantList(t, c, "roles", "Orders.Reader")
			wantAbsent(t, c, "scp", "name", "upn", "preferred_username", "groups")
			if tc.apiVersion == 2 {
				wantString(t, c, "iss", v2Issuer)
				wantString(t, c, "ver", "2.0")
				wantString(t, c, "azp", clientID)
				wantString(t, c, "azpacr", "1")
				wantAbsent(t, c, "appid", "appidacr")
			} else {
				wantString(t, c, "iss", v1Issuer)
				wantString(t, c, "ver", "1.0")
				wantString(t, c, "appid", clientID)
				wantString(t, c, "appidacr", "1")
				wantAbsent(t, c, "azp", "azpacr")
			}
			h := header(t, resp["access_token"])
			if h["alg"] != "RS256" || h["kid"] != i.SigningKeyID() || h["typ"] != "JWT" {
				t.Errorf("header %v, want RS256, the signing kid, typ JWT", h)
			}
		})
	}
}

func TestTokenErrors(t *testing.T) {
	i := newIDP(t, nil, Options{})
	v2 := "/" + tenantID + "/oauth2/v2.0/token"
	cc := func(kv ...string) url.Values {
		f := url.Values{"grant_type": {"client_credentials"}, "client_id": {clientID}, "client_secret": {"dev"}, "scope": {orderScopeAll}}
		for j := 0; j < len(kv); j += 2 {
			if kv[j+1] == "" {
				f.Del(kv[j])
				continue
			}
			f.Set(kv[j], kv[j+1])
		}
		return f
	}
	for _, tc := range []struct {
		name   string
		path   string
		form   url.Values
		status int
		code   string
		aadsts string
	}{
		{"wrong secret", v2, cc("client_secret", "guess"), 401, "invalid_client", "AADSTS7000215"},
		{"no secret", v2, cc("client_secret", ""), 401, "invalid_client", "AADSTS7000215"},
		{"unknown client", v2, cc("client_id", "00000000-1111-2222-3333-444444444444"), 400, "unauthorized_client", "AADSTS700016"},
		{"no client", v2, cc("client_id", ""), 400, "invalid_request", "AADSTS900144"},
		{"scope without .default", v2, cc("scope", "api://orders-api/Orders.Read"), 400, "invalid_scope", "AADSTS1002012"},
		{"unknown resource", v2, cc("scope", "api://nothing/.default"), 400, "invalid_resource", "AADSTS500011"},
		{"resource on v2", v2, cc("resource", apiAppIDURI), 400, "invalid_request", "AADSTS901002"},
		{"no resource on v1", "/" + tenantID + "/oauth2/token", cc("scope", ""), 400, "invalid_request", "AADSTS50001"},
		{"unknown grant", v2, cc("grant_type", "urn:ietf:params:oauth:grant-type:device_code"), 400, "unsupported_grant_type", "AADSTS70003"},
		{"no grant", v2, cc("grant_type", ""), 400, "invalid_request", "AADSTS900144"},
		{"wrong password", v2, url.Values{"grant_type": {"password"}, "client_id": {clientID}, "client_secret": {"dev"}, "username": {"alice"}, "password": {"x"}, "scope": {orderScopeAll}}, 400, "invalid_grant", "AADSTS50126"},
		{"unknown user", v2, url.Values{"grant_type": {"password"}, "client_id": {clientID}, "client_secret": {"dev"}, "username": {"mallory"}, "password": {"dev"}, "scope": {orderScopeAll}}, 400, "invalid_grant", "AADSTS50034"},
		{"unexposed scope", v2, url.Values{"grant_type": {"password"}, "client_id": {clientID}, "client_secret": {"dev"}, "username": {"alice"}, "password": {"dev"}, "scope": {"api://orders-api/Orders.Delete"}}, 400, "invalid_scope", "AADSTS70011"},
		{"two resources", v2, url.Values{"grant_type": {"password"}, "client_id": {clientID}, "client_secret": {"dev"}, "username": {"alice"}, "password": {"dev"}, "scope": {"api://orders-api/Orders.Read https://graph.microsoft.com/User.Read"}}, 400, "invalid_scope", "AADSTS28000"},
		{"only sign-in scopes", v2, url.Values{"grant_type": {"password"}, "client_id": {clientID}, "client_secret": {"dev"}, "username": {"alice"}, "password": {"dev"}, "scope": {"openid profile"}}, 400, "invalid_scope", "AADSTS70011"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := i.post(t, tc.path, tc.form)
			if status != tc.status || body["error"] != tc.code {
				t.Fatalf("%d %v, want %d %s", status, body, tc.status, tc.code)
			}
			desc, _ := body["error_description"].(string)
			if !strings.HasPrefix(desc, tc.aadsts+":") {
				t.Errorf("error_description %q, want it to start with %s", desc, tc.aadsts)
			}
			if _, ok := body["access_token"]; ok {
				t.Error("an error response carries a token")
			}
		})
	}
}

func TestTokenRequestTooLarge(t *testing.T) {
	i := newIDP(t, nil, Options{})
	big := url.Values{"grant_type": {"client_credentials"}, "client_id": {clientID}, "client_secret": {"dev"}, "scope": {strings.Repeat("a", maxFormSize)}}
	status, body := i.post(t, "/"+tenantID+"/oauth2/v2.0/token", big)
	if status != http.StatusBadRequest || body["error"] != "invalid_request" {
		t.Fatalf("%d %v, want 400 invalid_request", status, body)
	}
}

func TestPasswordGrant(t *testing.T) {
	for _, version := range []int{1, 2} {
		t.Run("v"+string(rune('0'+version)), func(t *testing.T) {
			i := newIDP(t, withVersion(version), Options{})
			resp := i.tokenFor(t, "/organizations/oauth2/v2.0/token", url.Values{
				"grant_type": {"password"}, "client_id": {clientID}, "client_secret": {"dev"},
				"username": {"alice@contoso-dev.onmicrosoft.com"}, "password": {"dev"},
				"scope": {"api://orders-api/.default openid offline_access"},
			})
			wantScope := "api://orders-api/Orders.Read api://orders-api/Orders.Write openid offline_access"
			if resp["scope"] != wantScope {
				t.Errorf("scope %v, want %q", resp["scope"], wantScope)
			}
			if resp["refresh_token"] == nil || resp["id_token"] == nil {
				t.Errorf("response lacks refresh_token or id_token: %v", resp)
			}
			c := claims(t, resp["access_token"])
			wantString(t, c, "oid", aliceOID)
			wantString(t, c, "scp", "Orders.Read Orders.Write")
			wantString(t, c, "name", "Alice Dev")
			wantList(t, c, "groups", employeesID)
			wantAbsent(t, c, "idtyp", "roles")
			sum := sha256.Sum256([]byte(clientID + "/" + aliceOID))
			wantString(t, c, "sub", base64.RawURLEncoding.EncodeToString(sum[:]))
			if version == 2 {
				wantString(t, c, "aud", apiClientID)
				wantString(t, c, "azp", clientID)
				wantString(t, c, "preferred_username", "alice@contoso-dev.onmicrosoft.com")
				wantAbsent(t, c, "upn", "unique_name", "appid")
			} else {
				wantString(t, c, "aud", apiAppIDURI)
				wantString(t, c, "appid", clientID)
				wantString(t, c, "upn", "alice@contoso-dev.onmicrosoft.com")
				wantString(t, c, "unique_name", "alice@contoso-dev.onmicrosoft.com")
				wantAbsent(t, c, "azp", "preferred_username")
			}
			id := claims(t, resp["id_token"])
			wantString(t, id, "aud", clientID)
			wantString(t, id, "iss", v2Issuer) // the endpoint's version, not the API's
			wantAbsent(t, id, "scp")
		})
	}
}

func TestUserRoles(t *testing.T) {
	i := newIDP(t, nil, Options{})
	resp := i.tokenFor(t, "/"+tenantID+"/oauth2/v2.0/token", url.Values{
		"grant_type": {"password"}, "client_id": {clientID}, "client_secret": {"dev"},
		"username": {"admin"}, "password": {"dev"}, "scope": {"api://orders-api/Orders.Read"},
	})
	c := claims(t, resp["access_token"])
	wantList(t, c, "roles", "Orders.Admin")
	wantList(t, c, "groups", adminsID, employeesID)
	wantString(t, c, "scp", "Orders.Read")
	if _, ok := resp["refresh_token"]; ok {
		t.Error("refresh token without offline_access")
	}
}

// verifierCase is a token and the verifier idgate would configure for it.
func TestTokensPassVerification(t *testing.T) {
	c := &clock{t: time.Now()}
	i := newIDP(t, nil, Options{Now: c.Now})
	v2 := i.verifier(t, "/"+tenantID+"/discovery/v2.0/keys", []string{v2Issuer}, []string{apiClientID}, c.Now)
	v1 := i.verifier(t, "/"+tenantID+"/discovery/keys", []string{v1Issuer}, []string{apiClientID, apiAppIDURI}, c.Now)
	multi := i.verifier(t, "/common/discovery/v2.0/keys", []string{"https://login.microsoftonline.com/{tenantid}/v2.0"}, []string{apiClientID}, c.Now)
	for _, tc := range []struct {
		name string
		mr   MintRequest
		v    *token.Verifier
		want token.Code
	}{
		{"v2 user", MintRequest{User: "alice"}, v2, ""},
		{"v2 app", MintRequest{App: "orders-ops"}, v2, ""},
		{"v2 user, multi-tenant keys", MintRequest{User: "bob"}, multi, ""},
		{"v1 user", MintRequest{User: "alice", Version: 1}, v1, ""},
		{"v1 app for the client ID", MintRequest{App: "orders-client", Version: 1, Audience: apiClientID}, v1, ""},
		{"v1 token against the v2 issuer", MintRequest{User: "alice", Version: 1}, v2, token.WrongIssuer},
		{"expired", MintRequest{User: "alice", Expired: true}, v2, token.Expired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := i.Mint(tc.mr, i.srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			tok, err := verify(t, tc.v, resp.AccessToken)
			var te *token.Error
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Verify: %v", err)
			case tc.want != "" && (!errors.As(err, &te) || te.Code != tc.want):
				t.Fatalf("Verify: %v, want %s", err, tc.want)
			case tc.want == "" && tok.TenantID != tenantID:
				t.Errorf("tid %q", tok.TenantID)
			}
		})
	}
}

func TestMint(t *testing.T) {
	i := newIDP(t, nil, Options{})
	resp, err := i.Mint(MintRequest{User: "alice", Scopes: []string{"Orders.Read"}, Groups: []string{"admins", "00000000-0000-4000-8000-000000000042"}, Roles: []string{"Orders.Admin"}}, i.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	c := claims(t, resp.AccessToken)
	wantString(t, c, "scp", "Orders.Read")
	wantList(t, c, "groups", adminsID, "00000000-0000-4000-8000-000000000042")
	wantList(t, c, "roles", "Orders.Admin")
	wantString(t, c, "azp", clientID)

	for _, mr := range []MintRequest{
		{},
		{User: "mallory"},
		{App: "nothing"},
		{App: "orders-client", Scopes: []string{"Orders.Read"}},
		{User: "alice", Scopes: []string{"Orders.Delete"}},
		{User: "alice", Groups: []string{"no-such-group"}},
		{User: "alice", Version: 3},
		{Tenant: "11111111-2222-3333-4444-555555555555", User: "alice"},
	} {
		if _, err := i.Mint(mr, i.srv.URL); err == nil {
			t.Errorf("Mint(%+v) succeeded", mr)
		}
	}

	// Over HTTP, as `idgate token` asks.
	body, _ := json.Marshal(MintRequest{User: "alice", Version: 1, Expired: true})
	hr, err := http.Post(i.srv.URL+"/_dev/token", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	m := decodeJSON(t, hr.Body)
	hr.Body.Close()
	c = claims(t, m["access_token"])
	wantString(t, c, "ver", "1.0")
	if exp, _ := c["exp"].(json.Number).Int64(); exp > time.Now().Unix() {
		t.Errorf("expired token has exp %d in the future", exp)
	}
	hr, err = http.Post(i.srv.URL+"/_dev/token", "application/json", strings.NewReader(`{"user":"alice","admin":true}`))
	if err != nil {
		t.Fatal(err)
	}
	hr.Body.Close()
	if hr.StatusCode != http.StatusBadRequest {
		t.Errorf("unknown mint option: %d, want 400", hr.StatusCode)
	}
}
