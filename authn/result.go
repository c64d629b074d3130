package authn

import (
	"net/http"
	"strings"

	"github.com/idgate/idgate/request"
	"github.com/idgate/idgate/token"
)

// MultipleTokens is the rejection code of a request that carries more than
// one distinct token at the locations its rules read. Istio leaves the
// identity of such a request undefined; idgate refuses it (401).
const MultipleTokens token.Code = "multiple_tokens"

// Result is the outcome of authenticating one request.
type Result struct {
	// Status is http.StatusOK (continue to authorization, with or without
	// an identity), http.StatusUnauthorized (a token is invalid) or
	// http.StatusForbidden (a valid token for an audience no rule
	// accepts).
	Status int
	// Identity is who the request proved to be; nil for an anonymous
	// request, and always nil unless Status is 200.
	Identity *request.Identity
	// Err says why a token was rejected; nil when Status is 200.
	Err *token.Error
	// Rule is the jwtRule that decided: the one that verified the token,
	// or the one whose rejection is reported. Nil when no rule decided
	// (no token, a CORS preflight, or an issuer no rule names).
	Rule *Rule
	// Preflight is set for a CORS preflight request, which is let through
	// without looking at its tokens.
	Preflight bool
	// Changes are what the front end applies to the request before it
	// passes it upstream.
	Changes Changes
	// Tokens are the tokens found, in the order they were found, with the
	// rules each one was checked against: the material of an explanation.
	Tokens []Found
}

// Rule identifies one jwtRule.
type Rule struct {
	// Policy is the RequestAuthentication it belongs to ("namespace/name").
	Policy string
	// Index is its position in that policy's spec.jwtRules.
	Index int
	// Issuer is its issuer.
	Issuer string
}

// Found is one token found in a request. Nothing in it has been verified.
type Found struct {
	Location Location
	// UnverifiedIssuer and UnverifiedAudiences are the token's "iss" and
	// "aud" as read without checking its signature: for explanations
	// only, never for decisions. They are empty when the token does not
	// parse.
	UnverifiedIssuer    string
	UnverifiedAudiences []string
	// Checks are the rules the token was checked against, in order.
	Checks []Check
}

// Check is the outcome of checking one token against one rule.
type Check struct {
	Rule Rule
	// Err is why the rule rejected the token; nil if it verified it.
	Err *token.Error
}

// Changes are the modifications a front end makes to an authenticated
// request before passing it upstream: first RemoveHeaders, then
// SetHeaders, then the query string.
type Changes struct {
	// RemoveHeaders are header names (canonical form) to delete: the
	// headers idgate sets, whatever the client sent in them, and the
	// header a token was read from unless its rule forwards the token.
	RemoveHeaders []string
	// SetHeaders are headers to set, each replacing any value present.
	SetHeaders []Header
	// RewriteQuery says the query string is to be replaced by Query: a
	// token was read from a query parameter that is not forwarded.
	RewriteQuery bool
	// Query is the raw query string (without '?') to forward when
	// RewriteQuery is set.
	Query string
}

// Header is one header to set.
type Header struct {
	Name, Value string
}

// Apply makes the header changes to h: removals first, then the headers
// set. The query string is the caller's to rewrite.
func (c Changes) Apply(h http.Header) {
	for _, name := range c.RemoveHeaders {
		h.Del(name)
	}
	for _, s := range c.SetHeaders {
		h.Set(s.Name, s.Value)
	}
}

// WWWAuthenticate returns the WWW-Authenticate response header for r, as
// Envoy's jwt_authn sends it with a 401 or 403: `Bearer realm="<realm>",
// error="invalid_token"` (RFC 6750 §3). It returns "" when r is not a
// rejection. The realm is conventionally the request URL without its
// query string, which may hold a token.
func (r Result) WWWAuthenticate(realm string) string {
	if r.Status == http.StatusOK || r.Status == 0 {
		return ""
	}
	return `Bearer realm="` + quote(realm) + `", error="invalid_token"`
}

// quote escapes s for the inside of an HTTP quoted-string (RFC 9110
// §5.6.4), dropping control characters, which a quoted-string cannot hold.
func quote(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 && r != '\t', r == 0x7f:
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
