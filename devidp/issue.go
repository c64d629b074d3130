package devidp

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// grant is everything an access token is issued from.
type grant struct {
	tenant *Tenant
	client *App
	api    *App
	user   *User // nil for app-only tokens
	// audience is the resource as the client named it (a v1 token's
	// aud); empty means the API's client ID.
	audience string
	scopes   []string // delegated scopes (scp)
	// version overrides the API's accessTokenAcceptedVersion when set.
	version int
	// roles and groups override the directory's when non-nil.
	roles  []string
	groups []string
	// expired issues a token that expired an hour ago.
	expired bool
	// clientAuth is how the client authenticated: "0" public, "1" secret.
	clientAuth string
	// base is the provider's URL, for the overage endpoint.
	base string
}

func (g *grant) tokenVersion() int {
	if g.version != 0 {
		return g.version
	}
	return g.api.version()
}

// times returns iat, nbf and exp for a token issued now.
func (p *Provider) times(expired bool) (iat, nbf, exp int64) {
	now := p.opts.Now()
	if expired {
		now = now.Add(-p.opts.TokenLifetime - time.Hour)
	}
	iat = now.Unix()
	return iat, iat, now.Add(p.opts.TokenLifetime).Unix()
}

// accessClaims returns the claims of an access token, as Entra issues it
// for g's API in g's version.
func (p *Provider) accessClaims(g *grant) map[string]any {
	t := g.tenant
	iat, nbf, exp := p.times(g.expired)
	c := map[string]any{
		"iat": iat, "nbf": nbf, "exp": exp,
		"tid": t.ID,
		"uti": randomID(16),
		"rh":  "0.dev",
		"aio": "dev",
	}
	v2 := g.tokenVersion() == 2
	if v2 {
		c["iss"] = fmt.Sprintf(V2Issuer, t.ID)
		c["aud"] = g.api.ClientID
		c["ver"] = "2.0"
		c["azp"] = g.client.ClientID
		c["azpacr"] = g.clientAuth
	} else {
		c["iss"] = fmt.Sprintf(V1Issuer, t.ID)
		aud := g.audience
		if aud == "" {
			aud = g.api.ClientID
		}
		c["aud"] = aud
		c["ver"] = "1.0"
		c["appid"] = g.client.ClientID
		c["appidacr"] = g.clientAuth
		c["idp"] = fmt.Sprintf(V1Issuer, t.ID)
	}
	roles := g.roles
	if g.user == nil {
		// App-only: the service principal is the subject.
		c["oid"] = g.client.ObjectID
		c["sub"] = g.client.ObjectID
		c["idtyp"] = "app"
		if roles == nil {
			roles = g.client.ApplicationPermissions[g.api.Name]
		}
	} else {
		u := g.user
		c["oid"] = u.OID
		c["sub"] = pairwiseSubject(g.client.ClientID, u.OID)
		c["name"] = u.displayName()
		c["scp"] = strings.Join(g.scopes, " ")
		if v2 {
			c["preferred_username"] = u.upn(t)
		} else {
			c["upn"] = u.upn(t)
			c["unique_name"] = u.upn(t)
			c["amr"] = []string{"pwd"}
			c["acr"] = "1"
		}
		if roles == nil {
			roles = u.AppRoles[g.api.Name]
		}
		p.addGroups(c, g)
	}
	if len(roles) > 0 {
		c["roles"] = slices.Clone(roles)
	}
	return c
}

// addGroups adds the groups claim, or the overage form when the user is
// in more groups than a token may list.
func (p *Provider) addGroups(c map[string]any, g *grant) {
	groups := g.groups
	if groups == nil {
		if !g.api.emitsGroups() {
			return
		}
		groups = g.user.groupIDs(g.tenant)
	}
	if len(groups) == 0 {
		return
	}
	if len(groups) > p.dir.groupsLimit() {
		c["_claim_names"] = map[string]any{"groups": "src1"}
		c["_claim_sources"] = map[string]any{"src1": map[string]any{
			"endpoint": g.base + "/graph/v1.0/users/" + g.user.OID + "/getMemberObjects",
		}}
		return
	}
	c["groups"] = slices.Clone(groups)
}

// idClaims returns the claims of an ID token for a user signing in to
// client, in the version of the endpoint used.
func (p *Provider) idClaims(t *Tenant, client *App, u *User, version int, nonce string) map[string]any {
	iat, nbf, exp := p.times(false)
	c := map[string]any{
		"aud": client.ClientID,
		"iat": iat, "nbf": nbf, "exp": exp,
		"tid":  t.ID,
		"oid":  u.OID,
		"sub":  pairwiseSubject(client.ClientID, u.OID),
		"name": u.displayName(),
		"rh":   "0.dev",
		"aio":  "dev",
	}
	if version == 2 {
		c["iss"] = fmt.Sprintf(V2Issuer, t.ID)
		c["ver"] = "2.0"
		c["preferred_username"] = u.upn(t)
	} else {
		c["iss"] = fmt.Sprintf(V1Issuer, t.ID)
		c["ver"] = "1.0"
		c["upn"] = u.upn(t)
		c["unique_name"] = u.upn(t)
		c["amr"] = []string{"pwd"}
	}
	if nonce != "" {
		c["nonce"] = nonce
	}
	return c
}

// sign signs claims with the active key.
func (p *Provider) sign(claims map[string]any) (string, error) {
	return p.keys.signer().Sign(claims, nil)
}

// pairwiseSubject is the sub of a user's tokens for one client: stable,
// different for every (client, user) pair, 43 characters like Entra's.
func pairwiseSubject(clientID, oid string) string {
	sum := sha256.Sum256([]byte(strings.ToLower(clientID) + "/" + strings.ToLower(oid)))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// randomID returns n random bytes, base64url-encoded.
func randomID(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// maxOutstanding bounds the authorization codes and refresh tokens kept.
const maxOutstanding = 10000

// A grantStore keeps single-use grants (codes, refresh tokens) by their
// random handle until they expire. It is bounded: when full, new grants
// are refused rather than memory growing.
type grantStore[T any] struct {
	max int
	now func() time.Time

	mu sync.Mutex
	m  map[string]stored[T]
}

type stored[T any] struct {
	v   T
	exp time.Time
}

func newGrantStore[T any](max int, now func() time.Time) *grantStore[T] {
	return &grantStore[T]{max: max, now: now, m: map[string]stored[T]{}}
}

// put stores v for ttl and returns its handle, or false when full.
func (s *grantStore[T]) put(v T, ttl time.Duration) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if len(s.m) >= s.max {
		for k, e := range s.m {
			if !now.Before(e.exp) {
				delete(s.m, k)
			}
		}
		if len(s.m) >= s.max {
			return "", false
		}
	}
	h := randomID(32)
	s.m[h] = stored[T]{v: v, exp: now.Add(ttl)}
	return h, true
}

// take removes and returns the grant under handle, if it has not expired.
func (s *grantStore[T]) take(handle string) (T, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[handle]
	delete(s.m, handle)
	if !ok || !s.now().Before(e.exp) {
		var zero T
		return zero, false
	}
	return e.v, true
}
