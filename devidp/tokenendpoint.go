package devidp

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// maxFormSize bounds a token or authorize request body.
const maxFormSize = 64 << 10

// Lifetimes of the grants the provider hands out.
const (
	codeLifetime    = 10 * time.Minute
	refreshLifetime = 24 * time.Hour
)

// oidcScopes are the scopes that ask for sign-in, not for an API.
var oidcScopes = []string{"openid", "profile", "email", "offline_access"}

// An oauthError is an error response of the token endpoint, shaped like
// Entra's: an OAuth error code, an AADSTS number and a description.
type oauthError struct {
	status int
	code   string
	aadsts int
	msg    string
}

func (e *oauthError) Error() string { return fmt.Sprintf("%s: AADSTS%d: %s", e.code, e.aadsts, e.msg) }

func writeOAuthError(w http.ResponseWriter, now time.Time, e *oauthError) {
	if e.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="idgate dev identity provider"`)
	}
	writeJSON(w, e.status, map[string]any{
		"error":             e.code,
		"error_description": fmt.Sprintf("AADSTS%d: %s", e.aadsts, e.msg),
		"error_codes":       []int{e.aadsts},
		"timestamp":         now.UTC().Format("2006-01-02 15:04:05Z"),
		"trace_id":          randomUUID(),
		"correlation_id":    randomUUID(),
	})
}

func badRequest(code string, aadsts int, format string, args ...any) *oauthError {
	return &oauthError{status: http.StatusBadRequest, code: code, aadsts: aadsts, msg: fmt.Sprintf(format, args...)}
}

// randomUUID returns a random version-4 UUID.
func randomUUID() string {
	b := make([]byte, 16)
	rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// TokenResponse is the token endpoint's answer.
type TokenResponse struct {
	TokenType    string `json:"token_type"`
	Scope        string `json:"scope,omitempty"`
	ExpiresIn    int64  `json:"expires_in"`
	ExtExpiresIn int64  `json:"ext_expires_in"`
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token,omitempty"`
	IDToken      string `json:"id_token,omitempty"`
	// Resource is set by the v1 endpoint: the resource as asked for.
	Resource string `json:"resource,omitempty"`
}

// authRequest is a parsed token or authorize request: which tenant, client
// and API, and what for.
type authRequest struct {
	tenant   *Tenant
	client   *App
	api      *App
	audience string   // resource as named, for v1 aud
	scopes   []string // delegated scopes on api (".default" expanded)
	oidc     []string // sign-in scopes asked for
	endpoint int      // 1 or 2
}

// tokenEndpoint serves /oauth2/token (v1) or /oauth2/v2.0/token (v2).
func (p *Provider) tokenEndpoint(version int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ref, ok := p.resolveTenant(w, r)
		if !ok {
			return
		}
		resp, err := p.token(r, ref, version)
		if err != nil {
			var oe *oauthError
			if !errors.As(err, &oe) {
				oe = &oauthError{status: http.StatusInternalServerError, code: "server_error", aadsts: 50000, msg: err.Error()}
			}
			p.log.Info("token request refused", "grant_type", r.PostFormValue("grant_type"), "error", oe.code, "detail", oe.msg)
			writeOAuthError(w, p.opts.Now(), oe)
			return
		}
		writeJSON(w, http.StatusOK, resp)
	}
}

func (p *Provider) token(r *http.Request, ref tenantRef, version int) (*TokenResponse, error) {
	r.Body = http.MaxBytesReader(nil, r.Body, maxFormSize)
	if err := r.ParseForm(); err != nil {
		return nil, badRequest("invalid_request", 900144, "The request body must be application/x-www-form-urlencoded and at most %d bytes.", maxFormSize)
	}
	f := r.PostForm
	grantType := f.Get("grant_type")
	if grantType == "" {
		return nil, badRequest("invalid_request", 900144, "The request body must contain the following parameter: 'grant_type'.")
	}
	t, client, err := p.authenticateClient(r, ref)
	if err != nil {
		return nil, err
	}
	base := p.baseURL(r)
	switch grantType {
	case "client_credentials":
		if client.Secret == "" {
			return nil, badRequest("unauthorized_client", 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.")
		}
		req, err := p.parseResource(t, client, version, f.Get("scope"), f.Get("resource"), true)
		if err != nil {
			return nil, err
		}
		g := &grant{tenant: t, client: client, api: req.api, audience: req.audience, clientAuth: "1", base: base}
		return p.respond(g, req, false, "")
	case "password":
		u := t.user(f.Get("username"))
		if u == nil {
			return nil, badRequest("invalid_grant", 50034, "The user account %s does not exist in the %s directory.", clipped(f.Get("username")), t.Domain)
		}
		if !equalSecret(f.Get("password"), p.dir.password(u)) {
			return nil, badRequest("invalid_grant", 50126, "Error validating credentials due to invalid username or password.")
		}
		req, err := p.parseResource(t, client, version, f.Get("scope"), f.Get("resource"), false)
		if err != nil {
			return nil, err
		}
		return p.respond(p.delegated(t, client, u, req, base), req, true, "")
	case "authorization_code":
		return p.redeemCode(r, t, client, base)
	case "refresh_token":
		return p.redeemRefresh(r, t, client, version, base)
	}
	return nil, badRequest("unsupported_grant_type", 70003, "The app requested an unsupported grant type '%s'.", clipped(grantType))
}

// authenticateClient finds the client (and so the tenant, for common and
// organizations) and checks its secret when one is sent or required.
func (p *Provider) authenticateClient(r *http.Request, ref tenantRef) (*Tenant, *App, error) {
	id, secret, basic := r.BasicAuth()
	if !basic {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if id == "" {
		return nil, nil, badRequest("invalid_request", 900144, "The request body must contain the following parameter: 'client_id'.")
	}
	t := ref.tenant
	if t == nil {
		t = p.dir.clientTenant(id)
	}
	var client *App
	if t != nil {
		client = t.appByClientID(id)
	}
	if client == nil {
		return nil, nil, &oauthError{status: http.StatusBadRequest, code: "unauthorized_client", aadsts: 700016,
			msg: fmt.Sprintf("Application with identifier '%s' was not found in the directory '%s'.", clipped(id), clipped(ref.name))}
	}
	// A confidential client always authenticates; a public client has no
	// secret to send.
	if client.Secret != "" || secret != "" {
		if client.Secret == "" || !equalSecret(secret, client.Secret) {
			return nil, nil, &oauthError{status: http.StatusUnauthorized, code: "invalid_client", aadsts: 7000215,
				msg: fmt.Sprintf("Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '%s'.", client.ClientID)}
		}
	}
	return t, client, nil
}

func equalSecret(got, want string) bool {
	return subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// parseResource reads which API a request is for: the v2 scope parameter
// ("api://orders/Orders.Read offline_access", "api://orders/.default")
// or the v1 resource parameter. appOnly requests must ask for
// "<resource>/.default".
func (p *Provider) parseResource(t *Tenant, client *App, version int, scope, resource string, appOnly bool) (*authRequest, error) {
	req := &authRequest{tenant: t, client: client, endpoint: version}
	if version == 2 {
		if resource != "" {
			return nil, badRequest("invalid_request", 901002, "The 'resource' request parameter is not supported.")
		}
		return req, p.parseScopes(req, scope, appOnly)
	}
	if resource == "" {
		return nil, badRequest("invalid_request", 50001, "The resource principal named is missing: the request must name a 'resource'.")
	}
	api := t.resource(resource)
	if api == nil {
		return nil, badRequest("invalid_resource", 500011, "The resource principal named %s was not found in the tenant named %s.", clipped(resource), t.Domain)
	}
	req.api, req.audience = api, resource
	if !appOnly {
		req.scopes = p.defaultScopes(client, api)
		if len(req.scopes) == 0 {
			return nil, badRequest("invalid_grant", 65001, "The user or administrator has not consented to use the application with ID '%s'.", client.ClientID)
		}
		req.oidc = []string{"openid"}
	}
	return req, nil
}

// parseScopes reads a v2 scope parameter into req.
func (p *Provider) parseScopes(req *authRequest, scope string, appOnly bool) error {
	var resource string
	var names []string
	for _, s := range strings.Fields(scope) {
		if slices.Contains(oidcScopes, s) {
			if appOnly {
				return badRequest("invalid_scope", 1002012, "The provided value for scope %s is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).", s)
			}
			req.oidc = append(req.oidc, s)
			continue
		}
		i := strings.LastIndexByte(s, '/')
		if i <= 0 {
			return badRequest("invalid_scope", 70011, "The provided value for the input parameter 'scope' is not valid. The scope %s names no resource: write it as <App ID URI or client ID>/<scope>.", clipped(s))
		}
		res, name := s[:i], s[i+1:]
		if resource != "" && res != resource {
			return badRequest("invalid_scope", 28000, "Provided value for the input parameter scope is not valid because it contains more than one resource. Scope %s is not valid.", clipped(scope))
		}
		resource = res
		names = append(names, name)
	}
	if resource == "" {
		return badRequest("invalid_scope", 70011, "The provided value for the input parameter 'scope' is not valid: ask for a scope of an API (\"api://orders/.default\").")
	}
	api := req.tenant.resource(resource)
	if api == nil {
		return badRequest("invalid_resource", 500011, "The resource principal named %s was not found in the tenant named %s.", clipped(resource), req.tenant.Domain)
	}
	req.api, req.audience = api, resource
	if appOnly {
		if len(names) != 1 || names[0] != ".default" {
			return badRequest("invalid_scope", 1002012, "The provided value for scope %s is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).", clipped(scope))
		}
		return nil
	}
	for _, n := range names {
		switch {
		case n == ".default":
			req.scopes = appendNew(req.scopes, p.defaultScopes(req.client, api)...)
		case slices.Contains(api.Scopes, n):
			req.scopes = appendNew(req.scopes, n)
		default:
			return badRequest("invalid_scope", 70011, "The provided value for the input parameter 'scope' is not valid. %s exposes no scope %q.", api.Name, clipped(n))
		}
	}
	if len(req.scopes) == 0 {
		return badRequest("invalid_grant", 65001, "The user or administrator has not consented to use the application with ID '%s'.", req.client.ClientID)
	}
	return nil
}

// defaultScopes are what "/.default" grants a client on api: the scopes
// consented for it, or else every scope the API exposes.
func (p *Provider) defaultScopes(client *App, api *App) []string {
	if s, ok := client.DelegatedPermissions[api.Name]; ok {
		return slices.Clone(s)
	}
	return slices.Clone(api.Scopes)
}

func appendNew(list []string, items ...string) []string {
	for _, s := range items {
		if !slices.Contains(list, s) {
			list = append(list, s)
		}
	}
	return list
}

func (p *Provider) delegated(t *Tenant, client *App, u *User, req *authRequest, base string) *grant {
	auth := "0"
	if client.Secret != "" {
		auth = "1"
	}
	return &grant{tenant: t, client: client, api: req.api, user: u, audience: req.audience, scopes: req.scopes, clientAuth: auth, base: base}
}

// respond issues the tokens of a grant: the access token and, for a user
// who signed in (session), a refresh token (v1 always, v2 with
// offline_access) and an ID token (with openid).
func (p *Provider) respond(g *grant, req *authRequest, session bool, nonce string) (*TokenResponse, error) {
	at, err := p.sign(p.accessClaims(g))
	if err != nil {
		return nil, err
	}
	life := int64(p.opts.TokenLifetime / time.Second)
	resp := &TokenResponse{TokenType: "Bearer", ExpiresIn: life, ExtExpiresIn: life, AccessToken: at}
	if req.endpoint == 1 {
		resp.Resource = req.audience
	}
	u := g.user
	if u == nil {
		p.log.Info("token issued", "kind", "app", "tenant", g.tenant.ID, "client", g.client.Name, "api", g.api.Name)
		return resp, nil
	}
	if req.endpoint == 2 {
		var scopes []string
		for _, s := range req.scopes {
			scopes = append(scopes, strings.TrimSuffix(req.audience, "/")+"/"+s)
		}
		resp.Scope = strings.Join(append(scopes, req.oidc...), " ")
	}
	if !session {
		p.log.Info("token minted", "tenant", g.tenant.ID, "client", g.client.Name, "api", g.api.Name, "user", u.Name)
		return resp, nil
	}
	if req.endpoint == 1 || slices.Contains(req.oidc, "offline_access") {
		h, ok := p.refreshs.put(refreshGrant{req: *req, oid: u.OID}, refreshLifetime)
		if !ok {
			return nil, &oauthError{status: http.StatusServiceUnavailable, code: "temporarily_unavailable", aadsts: 90033, msg: "Too many outstanding refresh tokens."}
		}
		resp.RefreshToken = h
	}
	if slices.Contains(req.oidc, "openid") {
		id, err := p.sign(p.idClaims(g.tenant, g.client, u, req.endpoint, nonce))
		if err != nil {
			return nil, err
		}
		resp.IDToken = id
	}
	p.log.Info("token issued", "kind", "user", "tenant", g.tenant.ID, "client", g.client.Name, "api", g.api.Name, "user", u.Name)
	return resp, nil
}

// refreshGrant is what a refresh token stands for.
type refreshGrant struct {
	req authRequest
	oid string
}

func (p *Provider) redeemRefresh(r *http.Request, t *Tenant, client *App, version int, base string) (*TokenResponse, error) {
	rg, ok := p.refreshs.take(r.PostForm.Get("refresh_token"))
	if !ok || rg.req.client != client || rg.req.tenant != t {
		return nil, badRequest("invalid_grant", 9002313, "Invalid request. The refresh token is malformed, expired, already redeemed or was issued to another client.")
	}
	u := t.user(rg.oid)
	if u == nil {
		return nil, badRequest("invalid_grant", 50034, "The user account no longer exists.")
	}
	req := rg.req
	req.endpoint = version
	if scope, resource := r.PostForm.Get("scope"), r.PostForm.Get("resource"); scope != "" || resource != "" {
		next, err := p.parseResource(t, client, version, scope, resource, false)
		if err != nil {
			return nil, err
		}
		req = *next
		if !slices.Contains(req.oidc, "offline_access") && version == 2 {
			req.oidc = append(req.oidc, "offline_access")
		}
	}
	return p.respond(p.delegated(t, client, u, &req, base), &req, true, "")
}

// authCode is what an authorization code stands for.
type authCode struct {
	req         authRequest
	oid         string
	redirectURI string
	challenge   string
	method      string
	nonce       string
}

func (p *Provider) redeemCode(r *http.Request, t *Tenant, client *App, base string) (*TokenResponse, error) {
	f := r.PostForm
	ac, ok := p.codes.take(f.Get("code"))
	if !ok || ac.req.client != client || ac.req.tenant != t {
		return nil, badRequest("invalid_grant", 70008, "The provided authorization code or refresh token has expired, was already redeemed or was issued to another client.")
	}
	if f.Get("redirect_uri") != ac.redirectURI {
		return nil, badRequest("invalid_grant", 500112, "The reply address does not match the reply address provided when requesting the authorization code.")
	}
	if ac.challenge != "" && !pkceMatches(f.Get("code_verifier"), ac.challenge, ac.method) {
		return nil, badRequest("invalid_grant", 50148, "The code_verifier does not match the code_challenge supplied in the authorization request.")
	}
	if ac.challenge == "" && client.Secret == "" {
		return nil, badRequest("invalid_grant", 50148, "A public client must use PKCE.")
	}
	u := t.user(ac.oid)
	if u == nil {
		return nil, badRequest("invalid_grant", 50034, "The user account no longer exists.")
	}
	return p.respond(p.delegated(t, client, u, &ac.req, base), &ac.req, true, ac.nonce)
}

// pkceMatches checks an RFC 7636 code verifier against its challenge.
func pkceMatches(verifier, challenge, method string) bool {
	if len(verifier) < 43 || len(verifier) > 128 {
		return false
	}
	got := verifier
	if method == "S256" {
		sum := sha256.Sum256([]byte(verifier))
		got = base64.RawURLEncoding.EncodeToString(sum[:])
	}
	return subtle.ConstantTimeCompare([]byte(got), []byte(challenge)) == 1
}
