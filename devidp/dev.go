package devidp

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
)

// MintRequest asks the dev-only /_dev/token endpoint for an access token
// with chosen contents. Only the dev provider serves that endpoint; real
// Entra ID tokens come from its token endpoint.
type MintRequest struct {
	// Tenant is a tenant ID or domain; empty means the directory's first.
	Tenant string `json:"tenant,omitempty"`
	// User is the user the token is for (name, UPN or oid); empty asks
	// for an app-only token of App.
	User string `json:"user,omitempty"`
	// App is the calling client (name or client ID). Required for
	// app-only tokens; for users it defaults to the first client with
	// delegated permissions on the API.
	App string `json:"app,omitempty"`
	// API is the resource (name, client ID or App ID URI); empty means
	// the tenant's first app with an App ID URI.
	API string `json:"api,omitempty"`
	// Audience is a v1 token's aud; empty means the API's App ID URI
	// (its client ID if it has none). v2 tokens always carry the client ID.
	Audience string `json:"audience,omitempty"`
	// Scopes are the delegated scopes (user tokens only); empty means
	// what "/.default" grants.
	Scopes []string `json:"scopes,omitempty"`
	// Roles, when set, replace the roles the directory assigns.
	Roles []string `json:"roles,omitempty"`
	// Groups, when set, replace the user's groups (names or object IDs).
	Groups []string `json:"groups,omitempty"`
	// Version is 1 or 2; 0 means the API's accessTokenAcceptedVersion.
	Version int `json:"version,omitempty"`
	// Expired asks for a token that expired an hour ago.
	Expired bool `json:"expired,omitempty"`
}

// maxJSONSize bounds a /_dev request body.
const maxJSONSize = 64 << 10

// devToken serves POST /_dev/token.
func (p *Provider) devToken(w http.ResponseWriter, r *http.Request) {
	var mr MintRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxJSONSize))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&mr); err != nil && !errors.Is(err, io.EOF) {
		writeOAuthError(w, p.opts.Now(), badRequest("invalid_request", 900144, "The body must be one JSON object of mint options: %s", clipped(err.Error())))
		return
	}
	resp, err := p.Mint(mr, p.baseURL(r))
	if err != nil {
		var oe *oauthError
		if !errors.As(err, &oe) {
			oe = badRequest("invalid_request", 900144, "%s", err.Error())
		}
		writeOAuthError(w, p.opts.Now(), oe)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// Mint issues an access token as MintRequest describes; base is the
// provider's URL for the groups overage endpoint. It is what /_dev/token
// serves, for tests that hold the Provider.
func (p *Provider) Mint(mr MintRequest, base string) (*TokenResponse, error) {
	t := &p.dir.Tenants[0]
	if mr.Tenant != "" {
		if t = p.dir.tenant(mr.Tenant); t == nil {
			return nil, fmt.Errorf("no tenant %q", clipped(mr.Tenant))
		}
	}
	api, err := mintAPI(t, mr.API)
	if err != nil {
		return nil, err
	}
	switch mr.Version {
	case 0, 1, 2:
	default:
		return nil, fmt.Errorf("version %d is not 1 or 2", mr.Version)
	}
	var user *User
	if mr.User != "" {
		if user = t.user(mr.User); user == nil {
			return nil, fmt.Errorf("no user %q in tenant %s", clipped(mr.User), t.ID)
		}
	}
	client, err := mintClient(t, api, mr.App, user != nil)
	if err != nil {
		return nil, err
	}
	g := &grant{tenant: t, client: client, api: api, user: user, version: mr.Version,
		roles: mr.Roles, expired: mr.Expired, clientAuth: "1", base: strings.TrimSuffix(base, "/")}
	if client.Secret == "" {
		g.clientAuth = "0"
	}
	g.audience = mr.Audience
	if g.audience == "" {
		g.audience = api.AppIDURI
	}
	if user == nil {
		if len(mr.Scopes) > 0 || mr.Groups != nil {
			return nil, errors.New("an app-only token has no scopes or groups: name a user")
		}
	} else {
		g.scopes = mr.Scopes
		if len(g.scopes) == 0 {
			g.scopes = p.defaultScopes(client, api)
		}
		for _, s := range g.scopes {
			if !slices.Contains(api.Scopes, s) {
				return nil, fmt.Errorf("%s exposes no scope %q", api.Name, clipped(s))
			}
		}
		if mr.Groups != nil {
			g.groups = []string{}
			for _, name := range mr.Groups {
				id, ok := groupID(t, name)
				if !ok {
					return nil, fmt.Errorf("no group %q in tenant %s (name a group or give an object ID)", clipped(name), t.ID)
				}
				g.groups = append(g.groups, id)
			}
		}
	}
	req := &authRequest{tenant: t, client: client, api: api, audience: g.audience, scopes: g.scopes, endpoint: 2}
	return p.respond(g, req, false, "")
}

// mintAPI picks the API of a minted token: the one named, else the
// tenant's first app with an App ID URI.
func mintAPI(t *Tenant, name string) (*App, error) {
	if name != "" {
		api := t.app(name)
		if api == nil {
			api = t.resource(name)
		}
		if api == nil {
			return nil, fmt.Errorf("no API %q in tenant %s", clipped(name), t.ID)
		}
		return api, nil
	}
	for i := range t.Apps {
		if t.Apps[i].AppIDURI != "" {
			return &t.Apps[i], nil
		}
	}
	return nil, fmt.Errorf("tenant %s has no API (an app with an appIdUri): name one with api", t.ID)
}

// mintClient picks the calling client of a minted token.
func mintClient(t *Tenant, api *App, name string, forUser bool) (*App, error) {
	if name != "" {
		if c := t.app(name); c != nil && c.Name != GraphAppName {
			return c, nil
		}
		if c := t.appByClientID(name); c != nil {
			return c, nil
		}
		return nil, fmt.Errorf("no app %q in tenant %s", clipped(name), t.ID)
	}
	if !forUser {
		return nil, errors.New("name a user or an app")
	}
	for i := range t.Apps {
		if _, ok := t.Apps[i].DelegatedPermissions[api.Name]; ok {
			return &t.Apps[i], nil
		}
	}
	return nil, fmt.Errorf("no client has delegated permissions on %s: name one with app", api.Name)
}

// groupID resolves a group name or object ID.
func groupID(t *Tenant, name string) (string, bool) {
	for _, g := range t.Groups {
		if g.Name == name || strings.EqualFold(g.ID, name) {
			return g.ID, true
		}
	}
	if guidRE.MatchString(name) {
		return name, true
	}
	return "", false
}

// devRotate serves POST /_dev/rotate.
func (p *Provider) devRotate(w http.ResponseWriter, r *http.Request) {
	kid, err := p.Rotate()
	if err != nil {
		writeOAuthError(w, p.opts.Now(), &oauthError{status: http.StatusInternalServerError, code: "server_error", aadsts: 50000, msg: err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"kid": kid, "grace": p.opts.RotationGrace.String()})
}

// devDirectory serves GET /_dev/directory: the directory without
// passwords and secrets, so that tools can name users and apps.
func (p *Provider) devDirectory(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, p.dir.redacted())
}

// redacted returns a copy of d without passwords and client secrets.
func (d *Directory) redacted() *Directory {
	out := *d
	out.Password = ""
	out.Tenants = slices.Clone(d.Tenants)
	for i := range out.Tenants {
		t := &out.Tenants[i]
		t.Users = slices.Clone(t.Users)
		for j := range t.Users {
			t.Users[j].Password = ""
		}
		t.Apps = slices.Clone(t.Apps)
		for j := range t.Apps {
			t.Apps[j].Secret = ""
		}
	}
	return &out
}
