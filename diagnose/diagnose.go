// Package diagnose turns a decision into advice: the Entra ID mistakes
// that only show when the verified token meets the policies (a scope
// string matched whole, a groups overage, a v1 token at a presenter
// rule), each with what to change. Mistakes visible in the token alone
// (issuer versions, audience forms, Graph tokens) are explained by the
// token's own rejection detail.
package diagnose

import (
	"fmt"
	"strings"

	"github.com/idgate/idgate/engine"
	"github.com/idgate/idgate/policy"
)

// Hints returns advice for a decision made with docs, most specific first.
// It returns nothing for decisions it has no advice on.
func Hints(d engine.Decision, docs []*policy.Document) []string {
	var out []string
	if id := d.Identity; id != nil {
		claim := func(name string) any { v, _ := id.Claims.Get(name); return v }
		if s, ok := claim("scp").(string); ok && strings.Contains(s, " ") && usesClaim(docs, "request.auth.claims[scp]") {
			out = append(out, fmt.Sprintf("the token's scp is one space-separated string (%q) and its jwtRule does not list scp in spaceDelimitedClaims, so a condition on request.auth.claims[scp] matches it only as that whole string; add `spaceDelimitedClaims: [scp]` to the jwtRule (Istio >= 1.28)", s))
		}
		if names, ok := claim("_claim_names").(map[string]any); ok {
			if _, ok := names["groups"]; ok {
				out = append(out, "the token carries the groups overage claim (_claim_names/_claim_sources) instead of groups: the user is in more groups than fit in a token, so policies on request.auth.claims[groups] see no groups; assign app roles to the groups and match request.auth.claims[roles], or emit only the application's groups")
			}
		}
		if _, hasAzp := id.Claims.Get("azp"); !hasAzp && claim("appid") != nil && usesClaim(docs, "request.auth.presenter") {
			out = append(out, fmt.Sprintf("this is a v1 token: it names its client in appid (%v), not azp, and request.auth.presenter reads only azp; match request.auth.claims[appid] or switch the API to v2 tokens (accessTokenAcceptedVersion: 2)", claim("appid")))
		}
	}
	return out
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
