package token

// The details of rejections: one line naming expected and actual values,
// with what to change where the cause is a common Entra ID mistake.

import (
	"fmt"
	"slices"
	"strings"
)

// Entra ID issuer forms (aad-jwt.md §1.3).
const (
	entraV1Prefix = "https://sts.windows.net/"
	entraV1Suffix = "/"
	entraV2Prefix = "https://login.microsoftonline.com/"
	entraV2Suffix = "/v2.0"
)

// graphAudiences are the aud values of Microsoft Graph tokens, normalised
// as normalAudience does.
var graphAudiences = []string{
	"00000003-0000-0000-c000-000000000000",
	"graph.microsoft.com",
	"graph.microsoft.us",
	"dod-graph.microsoft.us",
	"microsoftgraph.chinacloudapi.cn",
}

// workloadIdentityAudience is the aud of the Kubernetes service-account
// tokens that AKS workload identity exchanges at Entra (aad-jwt.md §8).
const workloadIdentityAudience = "api://AzureADTokenExchange"

// unknownKeyDetail explains why no key in keys matched the token.
func unknownKeyDetail(keys []Key, p *Parsed) string {
	t := &p.Unverified
	if t.KeyID == "" {
		return fmt.Sprintf("token has no kid and no key in the set is an %s key, which %s needs (the set has %s)",
			p.alg.kty, p.alg.name, describeKeys(keys))
	}
	return fmt.Sprintf("no key has kid %s (the set has %s)", quote(t.KeyID), describeKeys(keys))
}

// describeKeys summarises a key set: how many keys, and their kids.
func describeKeys(keys []Key) string {
	if len(keys) == 0 {
		return "no keys"
	}
	var kids []string
	for _, k := range keys {
		if k.ID != "" {
			kty, crv := keyType(k.Public)
			kids = append(kids, strings.TrimSpace(k.ID+" "+kty+" "+crv))
		}
	}
	n := "1 key"
	if len(keys) != 1 {
		n = fmt.Sprintf("%d keys", len(keys))
	}
	if len(kids) == 0 {
		return n + ", none with a kid"
	}
	return n + ": " + quoteList(kids)
}

// keyIssuerDetail explains why key k, which verified the signature, may
// not sign tokens from t's issuer.
func keyIssuerDetail(k *Key, t *Token) string {
	d := fmt.Sprintf("the key that verifies the signature (kid %s) is published for issuer %s, not for the token's iss %s",
		quote(k.ID), quote(k.Issuer), quote(t.Issuer))
	switch {
	case t.Issuer == "":
		d = fmt.Sprintf("the key that verifies the signature (kid %s) is published for issuer %s, and the token has no iss",
			quote(k.ID), quote(k.Issuer))
	case strings.Contains(k.Issuer, TenantPlaceholder) && t.TenantID == "":
		d += " (the token has no tid to put in place of " + TenantPlaceholder + ")"
	case isEntraV1(t.Issuer) && strings.HasPrefix(k.Issuer, entraV2Prefix):
		d += " — v1 tokens are signed with the v1 keys: use https://login.microsoftonline.com/<tenant>/discovery/keys as the JWKS, or set accessTokenAcceptedVersion: 2 in the app manifest"
	}
	return d
}

// rejection explains why t's issuer is not accepted.
func (s *issuerSet) rejection(t *Token) string {
	accepted := quoteList(s.all)
	if t.Issuer == "" {
		return "token has no iss; accepted: " + accepted
	}
	iss, tid := t.Issuer, t.TenantID
	d := fmt.Sprintf("token iss %s is not accepted (accepted: %s)", quote(iss), accepted)

	// v1 token where v2 is accepted, or the other way round.
	if g, ok := entraTenant(iss, entraV1Prefix, entraV1Suffix); ok {
		if v2 := entraV2Prefix + g + entraV2Suffix; s.accepts(v2, g) {
			return fmt.Sprintf("token iss %s (v1) but only %s (v2) is accepted — set accessTokenAcceptedVersion: 2 in the app manifest or add the v1 issuer",
				quote(iss), quote(s.describe(v2, g)))
		}
	}
	if g, ok := entraTenant(iss, entraV2Prefix, entraV2Suffix); ok {
		if v1 := entraV1Prefix + g + entraV1Suffix; s.accepts(v1, g) {
			return fmt.Sprintf("token iss %s (v2) but only %s (v1) is accepted — the API's app registration issues v2 tokens (accessTokenAcceptedVersion: 2): add the v2 issuer",
				quote(iss), quote(s.describe(v1, g)))
		}
	}
	// A template whose prefix and suffix fit: the tenant is the problem.
	for _, tm := range s.templates {
		if !strings.HasPrefix(iss, tm.prefix) || !strings.HasSuffix(iss, tm.suffix) || len(iss) < len(tm.prefix)+len(tm.suffix) {
			continue
		}
		g := iss[len(tm.prefix) : len(iss)-len(tm.suffix)]
		switch {
		case !isGUID(g):
			return d + fmt.Sprintf("; %s matches a tenant GUID (8-4-4-4-12 hex digits), and %s is not one", TenantPlaceholder, quote(g))
		case tid == "":
			return d + "; the token has no tid claim, which must equal the tenant in iss"
		case tid != g:
			return d + fmt.Sprintf("; the token's tid %s differs from the tenant %s in iss", quote(tid), quote(g))
		case s.tenants != nil && !s.tenants[strings.ToLower(g)]:
			return d + fmt.Sprintf("; tenant %s is not one of the allowed tenants", quote(g))
		}
	}
	for _, a := range s.all {
		if a+"/" == iss || a == iss+"/" {
			return d + fmt.Sprintf("; it differs from %s only by a trailing \"/\", and issuers are compared exactly", quote(a))
		}
	}
	return d
}

// describe names the accepted issuer that accepts iss: the exact string,
// or the template it matched.
func (s *issuerSet) describe(iss, tid string) string {
	if s.exact[iss] {
		return iss
	}
	for _, tm := range s.templates {
		if tm.matches(iss, tid) {
			return tm.prefix + TenantPlaceholder + tm.suffix
		}
	}
	return iss
}

// entraTenant returns the tenant GUID of an Entra issuer of one form.
func entraTenant(iss, prefix, suffix string) (string, bool) {
	if !strings.HasPrefix(iss, prefix) || !strings.HasSuffix(iss, suffix) || len(iss) != len(prefix)+36+len(suffix) {
		return "", false
	}
	g := iss[len(prefix) : len(prefix)+36]
	return g, isGUID(g)
}

func isEntraV1(iss string) bool {
	_, ok := entraTenant(iss, entraV1Prefix, entraV1Suffix)
	return ok
}

// rejection explains why none of t's audiences is accepted.
func (s *audienceSet) rejection(t *Token) string {
	accepted := quoteList(s.all)
	if len(t.Audience) == 0 {
		return "token has no aud; accepted: " + accepted
	}
	d := fmt.Sprintf("token aud %s is not accepted (accepted: %s)", quoteList(t.Audience), accepted)
	// Entra v1 tokens carry the App ID URI the client asked for, v2 tokens
	// the client ID; an API registered with both sees both.
	for _, a := range t.Audience {
		for _, c := range s.all {
			switch {
			case a == "api://"+c:
				return d + fmt.Sprintf("; %s is the App ID URI form of the accepted client ID %s — Entra issues either form (v1 tokens carry the App ID URI the client asked for), so add %s to the accepted audiences or set accessTokenAcceptedVersion: 2",
					quote(a), quote(c), quote(a))
			case c == "api://"+a:
				return d + fmt.Sprintf("; %s is the client ID form of the accepted App ID URI %s — Entra issues either form (v2 tokens always carry the client ID), so add %s to the accepted audiences",
					quote(a), quote(c), quote(a))
			}
		}
	}
	if slices.ContainsFunc(t.Audience, isGUID) != slices.ContainsFunc(s.all, isGUID) && !isGraphToken(t) && !hasAudience(t, workloadIdentityAudience) {
		return d + "; Entra puts the API's client ID (a GUID) in v2 tokens and the App ID URI the client requested (such as api://...) in v1 tokens: accept both forms of your API"
	}
	if _, ok := t.Claims["nonce"]; ok && !isGraphToken(t) {
		return d + "; the token has a nonce claim, so it looks like an ID token, which proves a sign-in to a client app: APIs accept access tokens requested for their own scopes"
	}
	return d
}

// kindHint names a kind of token that is never valid for an API — a
// Microsoft Graph token, a workload-identity service-account token — from
// what the token (unverified) says, or returns "".
func (v *Verifier) kindHint(p *Parsed) string {
	t := &p.Unverified
	switch {
	case isGraphToken(t):
		why := "its header has a nonce"
		if _, nonce := t.Header["nonce"]; !nonce {
			why = "aud " + quoteList(t.Audience)
		}
		return fmt.Sprintf("the token says (unverified) it is a Microsoft Graph access token (%s): only Microsoft Graph can validate those — the client must request a token for this API instead (scope %s)",
			why, v.scopeExample())
	case hasAudience(t, workloadIdentityAudience):
		return "the token says (unverified) it is a Kubernetes service-account token for AKS workload identity (aud \"" + workloadIdentityAudience +
			"\"): the workload must exchange it at Entra ID (client credentials with it as client_assertion) for an access token for this API, and send that"
	}
	return ""
}

// scopeExample is the scope a client requests to get a token for this
// API, from the accepted audiences where one says.
func (v *Verifier) scopeExample() string {
	for _, a := range v.audiences.all {
		switch {
		case strings.HasPrefix(a, "api://"):
			return strings.TrimSuffix(a, "/") + "/.default"
		case isGUID(a):
			return "api://" + a + "/.default"
		}
	}
	return "api://<your-app-id>/.default"
}

func isGraphToken(t *Token) bool {
	if _, nonce := t.Header["nonce"]; nonce {
		return true
	}
	for _, a := range t.Audience {
		if slices.Contains(graphAudiences, strings.ToLower(normalAudience(a))) {
			return true
		}
	}
	return false
}

func hasAudience(t *Token, aud string) bool {
	return slices.Contains(t.Audience, aud)
}

// IssuerRejection explains, in one line, why a token whose (unverified)
// iss and tid claims are iss and tid is not from any of the accepted
// issuers, with the Entra v1/v2 and tenant hints Verify gives. Callers
// that route tokens among several issuers before verifying use it for the
// token no issuer accepts.
func IssuerRejection(iss, tid string, accepted []string) string {
	var valid []string
	for _, a := range accepted {
		if a != "" && strings.Count(a, TenantPlaceholder) <= 1 {
			valid = append(valid, a)
		}
	}
	s, err := newIssuerSet(valid, nil)
	if err != nil {
		return fmt.Sprintf("token iss %s is not accepted (accepted: %s)", quote(iss), quoteList(accepted))
	}
	return s.rejection(&Token{Issuer: iss, TenantID: tid})
}
