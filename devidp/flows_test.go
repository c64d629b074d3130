package devidp

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	securityv1beta1 "istio.io/api/security/v1beta1"

	"github.com/idgate/idgate/engine"
	"github.com/idgate/idgate/keyset"
	"github.com/idgate/idgate/policytest"
	"github.com/idgate/idgate/request"
	"github.com/idgate/idgate/token"
)

const verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk-and-some-more-entropy"

func challengeOf(v string) string {
	sum := sha256.Sum256([]byte(v))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// signIn runs the authorize endpoint as a browser would: the sign-in page,
// then the chosen user. It returns the redirect's query.
func (i *idp) signIn(t *testing.T, path string, q url.Values, user string) url.Values {
	t.Helper()
	resp, body := i.get(t, path+"?"+q.Encode())
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `value="`+user+`"`) {
		t.Fatalf("sign-in page: %d\n%s", resp.StatusCode, body)
	}
	form := url.Values{"user": {user}}
	for k, v := range q {
		form[k] = v
	}
	post, err := noRedirect.PostForm(i.srv.URL+path, form)
	if err != nil {
		t.Fatal(err)
	}
	post.Body.Close()
	if post.StatusCode != http.StatusFound {
		t.Fatalf("sign-in: %d, want 302", post.StatusCode)
	}
	loc, err := url.Parse(post.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	if got := loc.Scheme + "://" + loc.Host + loc.Path; got != q.Get("redirect_uri") {
		t.Fatalf("redirected to %s, want %s", got, q.Get("redirect_uri"))
	}
	return loc.Query()
}

func TestAuthorizationCodePKCE(t *testing.T) {
	i := newIDP(t, nil, Options{})
	const path = "/" + tenantID + "/oauth2/v2.0/authorize"
	q := url.Values{
		"client_id": {clientID}, "redirect_uri": {redirectURI}, "response_type": {"code"},
		"scope": {"openid profile offline_access api://orders-api/Orders.Read"}, "state": {"s-123"}, "nonce": {"n-456"},
		"code_challenge": {challengeOf(verifier)}, "code_challenge_method": {"S256"},
	}
	redeem := func(code, v string) (int, map[string]any) {
		return i.post(t, "/"+tenantID+"/oauth2/v2.0/token", url.Values{
			"grant_type": {"authorization_code"}, "client_id": {clientID}, "client_secret": {"dev"},
			"code": {code}, "redirect_uri": {redirectURI}, "code_verifier": {v},
		})
	}

	back := i.signIn(t, path, q, "alice")
	if back.Get("state") != "s-123" || back.Get("code") == "" {
		t.Fatalf("redirect query %v, want code and state", back)
	}
	status, body := redeem(back.Get("code"), verifier)
	if status != http.StatusOK {
		t.Fatalf("redeem: %d %v", status, body)
	}
	c := claims(t, body["access_token"])
	wantString(t, c, "oid", aliceOID)
	wantString(t, c, "scp", "Orders.Read")
	id := claims(t, body["id_token"])
	wantString(t, id, "nonce", "n-456")
	wantString(t, id, "aud", clientID)
	if body["refresh_token"] == nil {
		t.Error("no refresh token with offline_access")
	}
	if status, body := redeem(back.Get("code"), verifier); status != 400 || body["error"] != "invalid_grant" {
		t.Errorf("second redemption of a code: %d %v, want invalid_grant", status, body)
	}

	back = i.signIn(t, path, q, "bob")
	if status, body := redeem(back.Get("code"), strings.Repeat("x", 64)); status != 400 || body["error"] != "invalid_grant" || !strings.HasPrefix(body["error_description"].(string), "AADSTS50148") {
		t.Errorf("wrong verifier: %d %v, want invalid_grant AADSTS50148", status, body)
	}
	// A code is single-use even when the redemption failed.
	if status, _ := redeem(back.Get("code"), verifier); status != 400 {
		t.Errorf("redeeming a code again after a failed redemption: %d, want 400", status)
	}
	back = i.signIn(t, path, q, "bob")
	if status, body := redeem(back.Get("code"), ""); status != 400 || body["error"] != "invalid_grant" {
		t.Errorf("no verifier: %d %v, want invalid_grant", status, body)
	}
}

func TestAuthorizeErrors(t *testing.T) {
	i := newIDP(t, nil, Options{})
	const path = "/common/oauth2/v2.0/authorize"
	good := url.Values{"client_id": {clientID}, "redirect_uri": {redirectURI}, "response_type": {"code"}, "scope": {"api://orders-api/.default"}, "state": {"st"}}
	with := func(kv ...string) url.Values {
		q := url.Values{}
		for k, v := range good {
			q[k] = v
		}
		for j := 0; j < len(kv); j += 2 {
			q.Set(kv[j], kv[j+1])
		}
		return q
	}
	// Never redirected: an unknown client or an unregistered redirect URI.
	for _, q := range []url.Values{
		with("client_id", "00000000-1111-2222-3333-444444444444"),
		with("redirect_uri", "https://attacker.example/cb"),
		with("redirect_uri", redirectURI+"/x"),
	} {
		resp, body := i.get(t, path+"?"+q.Encode())
		if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
			t.Errorf("%v: %d to %q, want a 400 page", q, resp.StatusCode, resp.Header.Get("Location"))
		}
		if strings.Contains(string(body), "<script") {
			t.Errorf("error page echoes markup: %s", body)
		}
	}
	// Redirected back with an error.
	for _, tc := range []struct {
		q    url.Values
		code string
	}{
		{with("response_type", "token"), "unsupported_response_type"},
		{with("scope", "api://orders-api/Nope"), "invalid_scope"},
		{with("code_challenge", "abc", "code_challenge_method", "S512"), "invalid_request"},
		{with("prompt", "none"), "login_required"},
	} {
		resp, _ := i.get(t, path+"?"+tc.q.Encode())
		loc, _ := url.Parse(resp.Header.Get("Location"))
		if resp.StatusCode != http.StatusFound || loc.Query().Get("error") != tc.code || loc.Query().Get("state") != "st" {
			t.Errorf("%v: %d to %s, want a redirect with error %s and the state", tc.q, resp.StatusCode, loc, tc.code)
		}
	}
	// prompt=none with a login_hint signs the user in without the page.
	resp, _ := i.get(t, path+"?"+with("prompt", "none", "login_hint", "admin").Encode())
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || loc.Query().Get("code") == "" {
		t.Errorf("prompt=none with login_hint: %d to %s, want a code", resp.StatusCode, loc)
	}
	// The sign-in page escapes what it carries through.
	resp, body := i.get(t, path+"?"+with("state", `"><script>alert(1)</script>`).Encode())
	if resp.StatusCode != http.StatusOK || strings.Contains(string(body), "<script>") {
		t.Errorf("sign-in page: %d, carries unescaped markup:\n%s", resp.StatusCode, body)
	}
}

func TestPublicClientNeedsPKCE(t *testing.T) {
	dir := DefaultDirectory()
	dir.Tenants[0].app("orders-client").Secret = ""
	i := newIDP(t, dir, Options{})
	q := url.Values{"client_id": {clientID}, "redirect_uri": {redirectURI}, "response_type": {"code"}, "scope": {"api://orders-api/.default"}}
	resp, _ := i.get(t, "/"+tenantID+"/oauth2/v2.0/authorize?"+q.Encode())
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if loc.Query().Get("error") != "invalid_request" {
		t.Fatalf("public client without PKCE: %d to %s, want invalid_request", resp.StatusCode, loc)
	}
	// plain is RFC 7636's default method.
	q.Set("code_challenge", verifier)
	back := i.signIn(t, "/"+tenantID+"/oauth2/v2.0/authorize", q, "alice")
	status, body := i.post(t, "/"+tenantID+"/oauth2/v2.0/token", url.Values{
		"grant_type": {"authorization_code"}, "client_id": {clientID},
		"code": {back.Get("code")}, "redirect_uri": {redirectURI}, "code_verifier": {verifier},
	})
	if status != http.StatusOK {
		t.Fatalf("public client with plain PKCE: %d %v", status, body)
	}
	wantString(t, claims(t, body["access_token"]), "azpacr", "0")
}

func TestRefreshToken(t *testing.T) {
	i := newIDP(t, nil, Options{})
	first := i.tokenFor(t, "/"+tenantID+"/oauth2/v2.0/token", url.Values{
		"grant_type": {"password"}, "client_id": {clientID}, "client_secret": {"dev"},
		"username": {"alice"}, "password": {"dev"}, "scope": {"api://orders-api/Orders.Read offline_access"},
	})
	refresh := func(rt string, extra ...string) (int, map[string]any) {
		f := url.Values{"grant_type": {"refresh_token"}, "client_id": {clientID}, "client_secret": {"dev"}, "refresh_token": {rt}}
		for j := 0; j < len(extra); j += 2 {
			f.Set(extra[j], extra[j+1])
		}
		return i.post(t, "/"+tenantID+"/oauth2/v2.0/token", f)
	}
	status, second := refresh(first["refresh_token"].(string))
	if status != http.StatusOK {
		t.Fatalf("refresh: %d %v", status, second)
	}
	c := claims(t, second["access_token"])
	wantString(t, c, "oid", aliceOID)
	wantString(t, c, "scp", "Orders.Read")
	if second["refresh_token"] == nil || second["refresh_token"] == first["refresh_token"] {
		t.Error("refresh did not hand out a new refresh token")
	}
	if status, body := refresh(first["refresh_token"].(string)); status != 400 || body["error"] != "invalid_grant" {
		t.Errorf("reused refresh token: %d %v, want invalid_grant", status, body)
	}
	// Another scope of the same API through the refresh token.
	status, third := refresh(second["refresh_token"].(string), "scope", "api://orders-api/Orders.Write")
	if status != http.StatusOK {
		t.Fatalf("refresh for another scope: %d %v", status, third)
	}
	wantString(t, claims(t, third["access_token"]), "scp", "Orders.Write")
	// A refresh token is bound to its client.
	ops := url.Values{"grant_type": {"refresh_token"}, "client_id": {"4c3b2a19-0f8e-4d7c-9b6a-5f4e3d2c1b0a"}, "client_secret": {"dev"}, "refresh_token": {third["refresh_token"].(string)}}
	if status, body := i.post(t, "/"+tenantID+"/oauth2/v2.0/token", ops); status != 400 || body["error"] != "invalid_grant" {
		t.Errorf("another client's refresh token: %d %v, want invalid_grant", status, body)
	}
}

func TestGrantStoreBounded(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	s := newGrantStore[int](2, c.Now)
	a, ok1 := s.put(1, time.Minute)
	_, ok2 := s.put(2, time.Hour)
	if _, ok := s.put(3, time.Minute); !ok1 || !ok2 || ok {
		t.Fatalf("puts: %v %v %v, want the third refused when full", ok1, ok2, ok)
	}
	c.Add(2 * time.Minute)
	if _, ok := s.take(a); ok {
		t.Error("an expired grant was taken")
	}
	if _, ok := s.put(3, time.Minute); !ok {
		t.Error("a put after expiry freed room was refused")
	}
}

func TestLogout(t *testing.T) {
	i := newIDP(t, nil, Options{})
	const path = "/" + tenantID + "/oauth2/v2.0/logout"
	resp, _ := i.get(t, path+"?post_logout_redirect_uri="+url.QueryEscape(redirectURI)+"&state=bye")
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != redirectURI+"?state=bye" {
		t.Errorf("registered URI: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, _ = i.get(t, path+"?post_logout_redirect_uri="+url.QueryEscape("https://attacker.example/"))
	if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
		t.Errorf("unregistered URI: %d to %q, want a 400 page", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, body := i.get(t, "/common/oauth2/logout")
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "signed out") {
		t.Errorf("no redirect URI: %d %s", resp.StatusCode, body)
	}
}

func TestGroupsOverage(t *testing.T) {
	dir := DefaultDirectory()
	dir.GroupsLimit = 3
	dir.Tenants[0].user("alice").ExtraGroups = 3 // 4 groups in all
	i := newIDP(t, dir, Options{})
	resp, err := i.Mint(MintRequest{User: "alice"}, i.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	c := claims(t, resp.AccessToken)
	wantAbsent(t, c, "groups")
	names, _ := c["_claim_names"].(map[string]any)
	sources, _ := c["_claim_sources"].(map[string]any)
	src, _ := sources[fmt.Sprint(names["groups"])].(map[string]any)
	endpoint, _ := src["endpoint"].(string)
	if want := i.srv.URL + "/graph/v1.0/users/" + aliceOID + "/getMemberObjects"; endpoint != want {
		t.Fatalf("overage claims %v %v, want endpoint %s", c["_claim_names"], c["_claim_sources"], want)
	}
	// bob, within the limit, gets his groups.
	resp, _ = i.Mint(MintRequest{User: "bob"}, i.srv.URL)
	wantList(t, claims(t, resp.AccessToken), "groups", employeesID)

	appToken := func(app string) string {
		tr := i.tokenFor(t, "/"+tenantID+"/oauth2/v2.0/token", url.Values{
			"grant_type": {"client_credentials"}, "client_id": {app}, "client_secret": {"dev"}, "scope": {"https://graph.microsoft.com/.default"},
		})
		return tr["access_token"].(string)
	}
	graphToken := appToken(idgateClient)
	gc := claims(t, graphToken)
	wantString(t, gc, "aud", GraphAppIDURI)
	wantList(t, gc, "roles", "GroupMember.Read.All")

	call := func(url, bearer, body string) (int, map[string]any) {
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		hr, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer hr.Body.Close()
		return hr.StatusCode, decodeJSON(t, hr.Body)
	}
	status, body := call(endpoint, graphToken, `{"securityEnabledOnly": false}`)
	if status != http.StatusOK {
		t.Fatalf("getMemberObjects: %d %v", status, body)
	}
	vals, _ := body["value"].([]any)
	if len(vals) != 4 || vals[0] != employeesID || vals[1] != generatedGroupID(aliceOID, 0) {
		t.Errorf("getMemberObjects value %v, want alice's 4 groups", body["value"])
	}

	userToken, _ := i.Mint(MintRequest{User: "alice"}, i.srv.URL)
	expired, _ := i.Mint(MintRequest{App: "idgate", API: "graph", Expired: true}, i.srv.URL)
	for _, tc := range []struct {
		name, url, bearer, body string
		status                  int
		code                    string
	}{
		{"no token", endpoint, "", `{"securityEnabledOnly": false}`, 401, "InvalidAuthenticationToken"},
		{"a token for the API, not Graph", endpoint, userToken.AccessToken, `{"securityEnabledOnly": false}`, 401, "InvalidAuthenticationToken"},
		{"expired", endpoint, expired.AccessToken, `{"securityEnabledOnly": false}`, 401, "InvalidAuthenticationToken"},
		{"an app without Graph permissions", endpoint, appToken(clientID), `{"securityEnabledOnly": false}`, 403, "Authorization_RequestDenied"},
		{"no body", endpoint, graphToken, ``, 400, "Request_BadRequest"},
		{"unknown user", i.srv.URL + "/graph/v1.0/users/00000000-0000-4000-8000-000000000000/getMemberObjects", graphToken, `{"securityEnabledOnly": true}`, 404, "Request_ResourceNotFound"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := call(tc.url, tc.bearer, tc.body)
			e, _ := body["error"].(map[string]any)
			if status != tc.status || e["code"] != tc.code {
				t.Errorf("%d %v, want %d %s", status, body, tc.status, tc.code)
			}
		})
	}
}

func TestRotationGrace(t *testing.T) {
	c := &clock{t: time.Now()}
	i := newIDP(t, nil, Options{Now: c.Now, RotationGrace: 10 * time.Minute})
	jwks := "/" + tenantID + "/discovery/v2.0/keys"
	kids := func() []string {
		_, body := i.get(t, jwks)
		keys, err := token.ParseJWKS(body)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, k := range keys {
			ids = append(ids, k.ID)
		}
		return ids
	}
	before := kids()
	old, err := i.Mint(MintRequest{User: "alice"}, i.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	oldKid := i.SigningKeyID()
	newKid, err := (&Client{BaseURL: i.srv.URL}).Rotate(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if newKid != before[1] {
		t.Errorf("new signing key %s, want the pre-published next key %s", newKid, before[1])
	}
	during := kids()
	if len(during) != 3 || during[0] != newKid || !contains(during, oldKid) {
		t.Fatalf("JWKS during grace %v, want the new, next and old (%s) keys", during, oldKid)
	}
	fresh, _ := i.Mint(MintRequest{User: "alice"}, i.srv.URL)
	if h := header(t, fresh.AccessToken); h["kid"] != newKid {
		t.Errorf("token after rotation signed by %v, want %s", h["kid"], newKid)
	}
	v := i.verifier(t, jwks, []string{v2Issuer}, []string{apiClientID}, c.Now)
	for _, raw := range []string{old.AccessToken, fresh.AccessToken} {
		if _, err := verify(t, v, raw); err != nil {
			t.Errorf("during grace: %v", err)
		}
	}

	c.Add(11 * time.Minute)
	after := kids()
	if len(after) != 2 || contains(after, oldKid) {
		t.Fatalf("JWKS after grace %v, want the old key %s gone", after, oldKid)
	}
	v = i.verifier(t, jwks, []string{v2Issuer}, []string{apiClientID}, c.Now)
	var te *token.Error
	if _, err := verify(t, v, old.AccessToken); !errors.As(err, &te) || te.Code != token.UnknownKID {
		t.Errorf("old key's token after grace: %v, want %s", err, token.UnknownKID)
	}
	if _, err := verify(t, v, fresh.AccessToken); err != nil {
		t.Errorf("new key's token after grace: %v", err)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// TestDevScenario decides requests with dev provider tokens against the
// policies `idgate dev` enforces, through the engine and a real keyset.
func TestDevScenario(t *testing.T) {
	i := newIDP(t, nil, Options{})
	f, err := policytest.ReadFile("../examples/dev-scenario.yaml")
	if err != nil {
		t.Fatal(err)
	}
	docs, err := f.Documents()
	if err != nil {
		t.Fatal(err)
	}
	if n := i.Directory().PointJWKSAt(docs, i.srv.URL); n != 2 {
		t.Fatalf("PointJWKSAt changed %d rules, want 2", n)
	}
	for _, d := range docs {
		for _, r := range d.RequestAuthentication.GetJwtRules() {
			if !strings.HasPrefix(r.GetJwksUri(), i.srv.URL+"/"+tenantID+"/discovery/") {
				t.Errorf("jwksUri %s not pointed at the dev provider", r.GetJwksUri())
			}
		}
	}
	eng, err := engine.New(docs, engine.Options{Keys: func(r *securityv1beta1.JWTRule) (token.KeySource, error) {
		ks, err := keyset.New(keyset.Config{JWKSURI: r.GetJwksUri(), Logger: quiet})
		if err == nil {
			t.Cleanup(func() { ks.Close() })
		}
		return ks, err
	}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		method string
		path   string
		mint   *MintRequest
		remote string
		want   int
	}{
		{"remote anonymous", "GET", "/api/orders", nil, "10.0.0.1", 403},
		{"localhost anonymous", "GET", "/api/orders", nil, "127.0.0.1", 200},
		{"alice reads", "GET", "/api/orders", &MintRequest{User: "alice"}, "10.0.0.1", 200},
		{"alice v1", "GET", "/api/orders", &MintRequest{User: "alice", Version: 1}, "10.0.0.1", 200},
		{"alice v1 for the client ID", "GET", "/api/orders", &MintRequest{User: "alice", Version: 1, Audience: apiClientID}, "10.0.0.1", 200},
		{"alice expired", "GET", "/api/orders", &MintRequest{User: "alice", Expired: true}, "127.0.0.1", 401},
		{"alice admin", "GET", "/admin", &MintRequest{User: "alice"}, "10.0.0.1", 403},
		{"admin group", "GET", "/admin/x", &MintRequest{User: "admin", Roles: []string{}}, "10.0.0.1", 200},
		{"app role", "GET", "/admin", &MintRequest{App: "orders-ops"}, "10.0.0.1", 200},
		{"app without role", "GET", "/admin", &MintRequest{App: "orders-client"}, "10.0.0.1", 403},
		{"alice writes", "POST", "/api/orders", &MintRequest{User: "alice"}, "10.0.0.1", 200},
		{"alice read-only writes", "POST", "/api/orders", &MintRequest{User: "alice", Scopes: []string{"Orders.Read"}}, "10.0.0.1", 403},
		{"app writes", "POST", "/api/orders", &MintRequest{App: "orders-client"}, "10.0.0.1", 403},
		{"graph token", "GET", "/api/orders", &MintRequest{App: "idgate", API: "graph"}, "10.0.0.1", 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, "http://orders.example"+tc.path, nil)
			r.RemoteAddr = tc.remote + ":40000"
			if tc.mint != nil {
				resp, err := i.Mint(*tc.mint, i.srv.URL)
				if err != nil {
					t.Fatal(err)
				}
				r.Header.Set("Authorization", "Bearer "+resp.AccessToken)
			}
			a, err := request.FromHTTP(r, 0)
			if err != nil {
				t.Fatal(err)
			}
			d := eng.Decide(context.Background(), a)
			if d.Status != tc.want {
				t.Errorf("%d (%s: %s), want %d", d.Status, d.Reason, d.Detail, tc.want)
			}
		})
	}
}
