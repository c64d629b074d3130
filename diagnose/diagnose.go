// Package diagnose turns a decision into advice: the Entra ID mistakes
// that most often explain a 401 or 403, recognised from the token and the
// policies, each with what to change.
package diagnose

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/idgate/idgate/engine"
	"github.com/idgate/idgate/policy"
	"github.com/idgate/idgate/token"
)

// Entra issuer forms (public cloud and sovereign clouds alike: the host
// is not checked, only the shape).
var (
	v1Issuer = regexp.MustCompile(`^https://[^/]+/([0-9a-fA-F-]{36})/$`)
	v2Issuer = regexp.MustCompile(`^https://[^/]+/([0-9a-fA-F-]{36})/v2\.0$`)
	guid     = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
)

// Hints returns advice for a decision made with docs, most specific first.
// It returns nothing for decisions it has no advice on.
func Hints(d engine.Decision, docs []*policy.Document) []string {
	var out []string
	rules := jwtRules(docs)
	for _, t := range d.Authn.Tokens {
		if d.Reason == string(token.WrongIssuer) {
			out = append(out, issuerHints(t.UnverifiedIssuer, rules)...)
		}
		if d.Reason == string(token.WrongAudience) {
			out = append(out, audienceHints(t.UnverifiedAudiences, t.UnverifiedIssuer, rules)...)
		}
	}
	if id := d.Identity; id != nil {
		if s, ok := id.Claims["scp"].(string); ok && strings.Contains(s, " ") && usesClaim(docs, "request.auth.claims[scp]") {
			out = append(out, fmt.Sprintf("the token's scp is one space-separated string (%q) and its jwtRule does not list scp in spaceDelimitedClaims, so a condition on request.auth.claims[scp] matches it only as that whole string; add `spaceDelimitedClaims: [scp]` to the jwtRule (Istio >= 1.28)", s))
		}
		if names, ok := id.Claims["_claim_names"].(map[string]any); ok {
			if _, ok := names["groups"]; ok {
				out = append(out, "the token carries the groups overage claim (_claim_names/_claim_sources) instead of groups: the user is in more groups than fit in a token, so policies on request.auth.claims[groups] see no groups; assign app roles to the groups and match request.auth.claims[roles], or emit only the application's groups")
			}
		}
		if _, hasAzp := id.Claims["azp"]; !hasAzp && id.Claims["appid"] != nil && usesClaim(docs, "request.auth.presenter") {
			out = append(out, fmt.Sprintf("this is a v1 token: it names its client in appid (%v), not azp, and request.auth.presenter reads only azp; match request.auth.claims[appid] or switch the API to v2 tokens (accessTokenAcceptedVersion: 2)", id.Claims["appid"]))
		}
	}
	return out
}

type jwtRule struct {
	policy    string
	issuer    string
	audiences []string
}

func jwtRules(docs []*policy.Document) []jwtRule {
	var out []jwtRule
	for _, d := range docs {
		for _, r := range d.RequestAuthentication.GetJwtRules() {
			out = append(out, jwtRule{policy: d.ID(), issuer: r.GetIssuer(), audiences: r.GetAudiences()})
		}
	}
	return out
}

// issuerHints recognises an Entra token of one version meeting rules that
// accept only the other version of the same tenant.
func issuerHints(iss string, rules []jwtRule) []string {
	tid, version := entraVersion(iss)
	if tid == "" {
		return nil
	}
	for _, r := range rules {
		rtid, rversion := entraVersion(r.issuer)
		if !strings.EqualFold(rtid, tid) || rversion == version {
			continue
		}
		if version == "v1" {
			return []string{fmt.Sprintf("the token is an Entra v1 token (iss %q) but %s accepts v2 tokens of the same tenant (%q): the API's app registration issues v1 tokens while accessTokenAcceptedVersion is null or 1; set it to 2 in the app manifest, or add a jwtRule with issuer %q (v1 tokens carry aud = the App ID URI or the client ID, so list both)", iss, r.policy, r.issuer, iss)}
		}
		return []string{fmt.Sprintf("the token is an Entra v2 token (iss %q) but %s accepts v1 tokens of the same tenant (%q): the API's app registration has accessTokenAcceptedVersion 2; add a jwtRule with issuer %q (v2 tokens carry aud = the client ID GUID)", iss, r.policy, r.issuer, iss)}
	}
	return nil
}

// entraVersion returns the tenant and version ("v1" or "v2") of an Entra
// issuer, or "" when iss is not one.
func entraVersion(iss string) (tid, version string) {
	if m := v1Issuer.FindStringSubmatch(iss); m != nil {
		return m[1], "v1"
	}
	if m := v2Issuer.FindStringSubmatch(iss); m != nil {
		return m[1], "v2"
	}
	return "", ""
}

// audienceHints recognises the client ID (GUID) vs App ID URI confusion.
func audienceHints(auds []string, iss string, rules []jwtRule) []string {
	for _, r := range rules {
		if r.issuer != iss || len(r.audiences) == 0 {
			continue
		}
		var guids, uris int
		for _, a := range r.audiences {
			if guid.MatchString(a) {
				guids++
			} else {
				uris++
			}
		}
		for _, a := range auds {
			switch {
			case guid.MatchString(a) && guids == 0:
				return []string{fmt.Sprintf("the token's aud is a client ID (%q) but %s lists only App ID URIs (%q): v2 tokens always carry the API's client ID, and v1 tokens carry whichever form the client asked for; add the client ID to audiences", a, r.policy, r.audiences)}
			case !guid.MatchString(a) && uris == 0 && strings.Contains(a, "://"):
				return []string{fmt.Sprintf("the token's aud is an App ID URI (%q) but %s lists only client IDs (%q): v1 tokens carry the App ID URI when the client asked for it; add it to audiences, or have the API issue v2 tokens (aud is then always the client ID)", a, r.policy, r.audiences)}
			}
		}
	}
	return nil
}

// usesClaim reports whether any AuthorizationPolicy has a condition on key.
func usesClaim(docs []*policy.Document, key string) bool {
	for _, d := range docs {
		for _, r := range d.AuthorizationPolicy.GetRules() {
			for _, w := range r.GetWhen() {
				if w.GetKey() == key {
					return true
				}
			}
		}
	}
	return false
}
