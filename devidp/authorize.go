package devidp

import (
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// authorizeParams are the parameters of an authorization request that
// the sign-in page carries through.
var authorizeParams = []string{"client_id", "redirect_uri", "response_type", "response_mode", "scope", "resource", "state", "nonce", "code_challenge", "code_challenge_method", "prompt", "login_hint"}

var signInPage = template.Must(template.New("signin").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in – idgate dev identity provider</title>
<style>body{font-family:sans-serif;max-width:32em;margin:3em auto}button{display:block;width:100%;margin:.4em 0;padding:.7em;font-size:1em;text-align:left}small{color:#666}</style>
</head><body>
<h1>Sign in to {{.Client}}</h1>
<p><small>idgate dev identity provider – tenant {{.Tenant}}. For development only: no password is asked.</small></p>
<form method="post">
{{range .Hidden}}<input type="hidden" name="{{.Name}}" value="{{.Value}}">
{{end}}{{range .Users}}<button type="submit" name="user" value="{{.Name}}">{{.DisplayName}} <small>{{.UPN}}</small></button>
{{end}}</form>
</body></html>
`))

var messagePage = template.Must(template.New("message").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Title}} – idgate dev identity provider</title></head>
<body style="font-family:sans-serif;max-width:32em;margin:3em auto"><h1>{{.Title}}</h1><p>{{.Message}}</p></body></html>
`))

func writePage(w http.ResponseWriter, status int, title, msg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	messagePage.Execute(w, struct{ Title, Message string }{title, msg})
}

// authorize serves the authorize endpoint: GET shows the sign-in page
// (pick a user); POST with the chosen user, or GET with prompt=none and a
// login_hint naming a user, sends the browser back to the client with an
// authorization code. Errors in client_id or redirect_uri are shown on a
// page, never redirected (no open redirect); other errors go back to the
// client as error and error_description, as OAuth 2.0 says.
func (p *Provider) authorize(version int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ref, ok := p.resolveTenant(w, r)
		if !ok {
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxFormSize)
		if err := r.ParseForm(); err != nil {
			writePage(w, http.StatusBadRequest, "Bad request", "The request could not be read.")
			return
		}
		q := r.Form
		clientID := q.Get("client_id")
		t := ref.tenant
		if t == nil {
			t = p.dir.clientTenant(clientID)
		}
		var client *App
		if t != nil && clientID != "" {
			client = t.appByClientID(clientID)
		}
		if client == nil {
			writePage(w, http.StatusBadRequest, "Sign-in error", "AADSTS700016: Application with identifier '"+clipped(clientID)+"' was not found in the directory '"+clipped(ref.name)+"'.")
			return
		}
		redirect := q.Get("redirect_uri")
		if !client.redirectAllowed(redirect) {
			writePage(w, http.StatusBadRequest, "Sign-in error", "AADSTS50011: The redirect URI '"+clipped(redirect)+"' specified in the request does not match the redirect URIs configured for the application '"+client.ClientID+"'.")
			return
		}
		back := func(params url.Values) {
			if s := q.Get("state"); s != "" {
				params.Set("state", s)
			}
			http.Redirect(w, r, appendQuery(redirect, params), http.StatusFound)
		}
		fail := func(e *oauthError) {
			back(url.Values{"error": {e.code}, "error_description": {e.Error()}})
		}
		if rt := q.Get("response_type"); rt != "code" {
			fail(badRequest("unsupported_response_type", 700054, "response_type '%s' is not enabled for the application; use code.", clipped(rt)))
			return
		}
		if m := q.Get("response_mode"); m != "" && m != "query" {
			fail(badRequest("invalid_request", 900144, "response_mode '%s' is not supported by the dev identity provider; use query.", clipped(m)))
			return
		}
		challenge, method := q.Get("code_challenge"), q.Get("code_challenge_method")
		switch {
		case challenge == "" && client.Secret == "":
			fail(badRequest("invalid_request", 9002325, "Proof Key for Code Exchange is required for public clients."))
			return
		case challenge == "" && method != "":
			fail(badRequest("invalid_request", 900144, "code_challenge_method without code_challenge."))
			return
		case challenge != "" && method == "":
			method = "plain"
		}
		if method != "" && method != "plain" && method != "S256" {
			fail(badRequest("invalid_request", 501491, "Invalid code_challenge_method '%s': use S256.", clipped(method)))
			return
		}
		req, err := p.parseResource(t, client, version, q.Get("scope"), q.Get("resource"), false)
		var oe *oauthError
		if errors.As(err, &oe) {
			fail(oe)
			return
		}
		name := ""
		switch {
		case r.Method == http.MethodPost:
			name = r.PostForm.Get("user")
		case q.Get("prompt") == "none":
			name = q.Get("login_hint")
			if name == "" || t.user(name) == nil {
				fail(badRequest("login_required", 50058, "A silent sign-in request was sent but no user is signed in: give a login_hint naming a user."))
				return
			}
		}
		if name == "" {
			p.showSignIn(w, t, client, q)
			return
		}
		u := t.user(name)
		if u == nil {
			fail(badRequest("access_denied", 50034, "The user account %s does not exist in the %s directory.", clipped(name), t.Domain))
			return
		}
		code, ok := p.codes.put(authCode{req: *req, oid: u.OID, redirectURI: redirect, challenge: challenge, method: method, nonce: q.Get("nonce")}, codeLifetime)
		if !ok {
			fail(&oauthError{code: "temporarily_unavailable", aadsts: 90033, msg: "Too many outstanding authorization codes."})
			return
		}
		p.log.Info("user signed in", "tenant", t.ID, "client", client.Name, "user", u.Name)
		back(url.Values{"code": {code}})
	}
}

func (p *Provider) showSignIn(w http.ResponseWriter, t *Tenant, client *App, q url.Values) {
	type hidden struct{ Name, Value string }
	type user struct{ Name, DisplayName, UPN string }
	data := struct {
		Client, Tenant string
		Hidden         []hidden
		Users          []user
	}{Client: client.Name, Tenant: t.Domain}
	for _, k := range authorizeParams {
		if k == "prompt" {
			continue
		}
		if v := q.Get(k); v != "" {
			data.Hidden = append(data.Hidden, hidden{k, v})
		}
	}
	hint := q.Get("login_hint")
	for _, u := range t.Users {
		e := user{u.Name, u.displayName(), u.upn(t)}
		if hint != "" && (u.Name == hint || strings.EqualFold(u.upn(t), hint)) {
			data.Users = slices.Insert(data.Users, 0, e)
			continue
		}
		data.Users = append(data.Users, e)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'")
	w.Header().Set("X-Frame-Options", "DENY")
	signInPage.Execute(w, data)
}

// appendQuery adds params to a URL that may already have a query.
func appendQuery(u string, params url.Values) string {
	sep := "?"
	if strings.Contains(u, "?") {
		sep = "&"
	}
	return u + sep + params.Encode()
}

// logout serves the end-session endpoint. The dev provider keeps no
// browser session, so signing out only sends the browser on: to
// post_logout_redirect_uri when it is a redirect URI registered in the
// tenant (with state), else to a "signed out" page.
func (p *Provider) logout(version int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ref, ok := p.resolveTenant(w, r)
		if !ok {
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxFormSize)
		if err := r.ParseForm(); err != nil {
			writePage(w, http.StatusBadRequest, "Bad request", "The request could not be read.")
			return
		}
		target := r.Form.Get("post_logout_redirect_uri")
		if target == "" {
			writePage(w, http.StatusOK, "Signed out", "You have signed out. You can close this window.")
			return
		}
		tenants := p.dir.Tenants
		if ref.tenant != nil {
			tenants = []Tenant{*ref.tenant}
		}
		for i := range tenants {
			for j := range tenants[i].Apps {
				if tenants[i].Apps[j].redirectAllowed(target) {
					params := url.Values{}
					if s := r.Form.Get("state"); s != "" {
						params.Set("state", s)
					}
					if len(params) == 0 {
						http.Redirect(w, r, target, http.StatusFound)
					} else {
						http.Redirect(w, r, appendQuery(target, params), http.StatusFound)
					}
					return
				}
			}
		}
		writePage(w, http.StatusBadRequest, "Sign-out error", "AADSTS50011: The post_logout_redirect_uri '"+clipped(target)+"' is not a redirect URI of any application in the tenant.")
	}
}
