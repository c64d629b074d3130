// Package devidp is an embedded identity provider that behaves like
// Microsoft Entra ID for development and tests: per-tenant v1 and v2
// discovery documents, JWKS with key rotation, a token endpoint
// (client_credentials, authorization_code with PKCE, refresh_token,
// password), a sign-in page, an end-session endpoint and a Graph-like
// getMemberObjects endpoint, issuing tokens with Entra's claims, issuers
// and audiences. It also serves dev-only endpoints (/_dev/token,
// /_dev/rotate) that a real identity provider never has.
//
// It is for development and tests only: it signs whatever its directory
// says, with keys that live in memory, for anyone who asks.
package devidp

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"
)

// Entra ID's issuer forms. The dev provider issues tokens with exactly
// these issuers, so that policies written for it work unchanged against
// Entra ID (only the jwksUri differs).
const (
	// V1Issuer is the v1.0 access-token issuer; %s is the tenant ID.
	V1Issuer = "https://sts.windows.net/%s/"
	// V2Issuer is the v2.0 issuer; %s is the tenant ID.
	V2Issuer = "https://login.microsoftonline.com/%s/v2.0"
	// tenantTemplate is the tenant-independent documents' placeholder.
	tenantTemplate = "{tenantid}"
)

// Defaults of Options.
const (
	DefaultTokenLifetime = time.Hour
	DefaultRotationGrace = time.Hour
)

// Options configure a Provider.
type Options struct {
	// BaseURL is the provider's own URL ("http://127.0.0.1:9400"), used
	// in discovery documents and the groups overage endpoint. Empty means
	// "http://" + the Host of each request.
	BaseURL string
	// TokenLifetime is how long access and ID tokens are valid (default
	// DefaultTokenLifetime).
	TokenLifetime time.Duration
	// RotationGrace is how long a rotated-out key stays in the JWKS
	// (default DefaultRotationGrace).
	RotationGrace time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives one line per token issued or refused; nil means
	// slog.Default().
	Logger *slog.Logger
}

// A Provider is a running dev identity provider. It is safe for
// concurrent use.
type Provider struct {
	dir  *Directory
	opts Options
	log  *slog.Logger
	keys *keyRing

	codes    *grantStore[authCode]
	refreshs *grantStore[refreshGrant]
	mux      *http.ServeMux
}

// New returns a provider for dir with two fresh signing keys.
func New(dir *Directory, opts Options) (*Provider, error) {
	if dir == nil {
		return nil, fmt.Errorf("devidp: no directory")
	}
	if err := dir.validate(); err != nil {
		return nil, fmt.Errorf("devidp: %w", err)
	}
	if opts.TokenLifetime <= 0 {
		opts.TokenLifetime = DefaultTokenLifetime
	}
	if opts.RotationGrace <= 0 {
		opts.RotationGrace = DefaultRotationGrace
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	opts.BaseURL = strings.TrimSuffix(opts.BaseURL, "/")
	keys, err := newKeyRing(opts.RotationGrace, opts.Now)
	if err != nil {
		return nil, err
	}
	p := &Provider{
		dir:      dir,
		opts:     opts,
		log:      opts.Logger,
		keys:     keys,
		codes:    newGrantStore[authCode](maxOutstanding, opts.Now),
		refreshs: newGrantStore[refreshGrant](maxOutstanding, opts.Now),
	}
	p.mux = p.routes()
	return p, nil
}

// Directory returns the directory the provider serves.
func (p *Provider) Directory() *Directory { return p.dir }

// ServeHTTP serves every endpoint.
func (p *Provider) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	p.mux.ServeHTTP(w, r)
}

// Rotate makes the pre-published next key the signing key, keeps the
// previous one in the JWKS for the grace period, and publishes a new next
// key. It returns the new signing key's ID.
func (p *Provider) Rotate() (string, error) {
	kid, err := p.keys.rotate()
	if err != nil {
		return "", err
	}
	p.log.Info("signing key rotated", "kid", kid, "grace", p.opts.RotationGrace.String())
	return kid, nil
}

// RotateEvery rotates the keys every interval until ctx ends.
func (p *Provider) RotateEvery(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := p.Rotate(); err != nil {
				p.log.Error("key rotation failed", "err", err)
			}
		}
	}
}

// SigningKeyID returns the ID of the key that signs new tokens.
func (p *Provider) SigningKeyID() string { return p.keys.signer().ID() }

// JWKSURI returns the v2 keys URL of a tenant under base, the value a
// jwtRule's jwksUri takes for the dev provider; JWKSURIv1 the v1 one.
func JWKSURI(base, tenantID string) string {
	return strings.TrimSuffix(base, "/") + "/" + tenantID + "/discovery/v2.0/keys"
}

// JWKSURIv1 returns the v1 keys URL of a tenant under base.
func JWKSURIv1(base, tenantID string) string {
	return strings.TrimSuffix(base, "/") + "/" + tenantID + "/discovery/keys"
}

// baseURL is the URL the provider's endpoints are under, for r.
func (p *Provider) baseURL(r *http.Request) string {
	if p.opts.BaseURL != "" {
		return p.opts.BaseURL
	}
	return "http://" + r.Host
}

func (p *Provider) routes() *http.ServeMux {
	m := http.NewServeMux()
	m.HandleFunc("GET /{$}", p.index)
	m.HandleFunc("GET /{tenant}/v2.0/.well-known/openid-configuration", p.discovery(2))
	m.HandleFunc("GET /{tenant}/.well-known/openid-configuration", p.discovery(1))
	m.HandleFunc("GET /{tenant}/discovery/v2.0/keys", p.jwks(2))
	m.HandleFunc("GET /{tenant}/discovery/keys", p.jwks(1))
	for v, prefix := range map[int]string{1: "/{tenant}/oauth2/", 2: "/{tenant}/oauth2/v2.0/"} {
		m.HandleFunc("GET "+prefix+"authorize", p.authorize(v))
		m.HandleFunc("POST "+prefix+"authorize", p.authorize(v))
		m.HandleFunc("POST "+prefix+"token", p.tokenEndpoint(v))
		m.HandleFunc("GET "+prefix+"logout", p.logout(v))
		m.HandleFunc("POST "+prefix+"logout", p.logout(v))
	}
	m.HandleFunc("POST /graph/v1.0/users/{id}/getMemberObjects", p.memberObjects("users"))
	m.HandleFunc("POST /graph/v1.0/servicePrincipals/{id}/getMemberObjects", p.memberObjects("servicePrincipals"))
	m.HandleFunc("POST /_dev/token", p.devToken)
	m.HandleFunc("POST /_dev/rotate", p.devRotate)
	m.HandleFunc("GET /_dev/directory", p.devDirectory)
	return m
}

// tenantRef is what a {tenant} path segment names: one tenant, or the
// tenant-independent "common" and "organizations".
type tenantRef struct {
	tenant *Tenant // nil for common/organizations
	name   string  // as written
}

// resolveTenant reads the {tenant} path segment; ok is false (and an
// Entra-shaped error written) when it names no tenant.
func (p *Provider) resolveTenant(w http.ResponseWriter, r *http.Request) (tenantRef, bool) {
	name := r.PathValue("tenant")
	switch strings.ToLower(name) {
	case "common", "organizations":
		return tenantRef{name: name}, true
	}
	if t := p.dir.tenant(name); t != nil {
		return tenantRef{tenant: t, name: name}, true
	}
	writeOAuthError(w, p.opts.Now(), &oauthError{
		status: http.StatusBadRequest, code: "invalid_tenant", aadsts: 90002,
		msg: fmt.Sprintf("Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.", clipped(name)),
	})
	return tenantRef{}, false
}

// clipped shortens untrusted input echoed in messages.
func clipped(s string) string {
	const max = 80
	if len(s) > max {
		s = s[:max] + "…"
	}
	return strings.ToValidUTF8(s, "?")
}
