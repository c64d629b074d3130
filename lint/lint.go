// Package lint finds the classic mistakes in Istio security policies for
// Entra ID: patterns that are valid YAML and valid Istio but do not mean
// what their authors think. Each finding says how to fix it.
package lint

import (
	"fmt"
	"net/netip"
	"regexp"
	"sort"
	"strings"

	securityv1beta1 "istio.io/api/security/v1beta1"

	"github.com/idgate/idgate/policy"
)

// Finding is one warning about a policy.
type Finding struct {
	// File and Line locate the document the finding is about.
	File string
	Line int
	// Policy is the document's "namespace/name".
	Policy string
	// Path is the field the finding is about, e.g.
	// "spec.rules[0].from[0].source.requestPrincipals[1]".
	Path string
	// Code names the kind of mistake; stable, for tools to filter on.
	Code string
	// Message says what is wrong, Fix what to write instead.
	Message string
	Fix     string
}

func (f Finding) String() string {
	loc := f.File
	if f.Line > 0 {
		loc = fmt.Sprintf("%s:%d", f.File, f.Line)
	}
	s := fmt.Sprintf("%s: %s: %s: %s [%s]", loc, f.Policy, f.Path, f.Message, f.Code)
	if f.Fix != "" {
		s += "\n    fix: " + f.Fix
	}
	return s
}

// The finding codes.
const (
	CodeV1PrincipalPattern     = "v1-principal-pattern"
	CodeIssuerWildcard         = "issuer-wildcard"
	CodeScopeNotSplit          = "scope-not-split"
	CodeHostWithoutPort        = "host-without-port"
	CodePeerPrincipalAsRequest = "peer-principal-in-request-principals"
	CodeRequestPrincipalAsPeer = "request-principal-in-principals"
	CodeAllowsNothing          = "allow-matches-nothing"
	CodeUnknownIssuer          = "issuer-not-authenticated"
	CodeNoAuthentication       = "jwt-rule-without-authentication"
	CodeGroupsOverage          = "groups-overage"
	CodePresenterV1            = "presenter-v1"
)

// Check returns the findings for a set of documents that apply to one
// workload, ordered by file, line and path.
func Check(docs []*policy.Document) []Finding {
	c := checker{issuers: map[string]bool{}, split: map[string]bool{}}
	for _, d := range docs {
		if ra := d.RequestAuthentication; ra != nil {
			c.hasAuthn = true
			for _, r := range ra.GetJwtRules() {
				if r.GetIssuer() != "" {
					c.issuers[r.GetIssuer()] = true
				}
				for _, s := range r.GetSpaceDelimitedClaims() {
					c.split[s] = true
				}
			}
		}
	}
	for _, d := range docs {
		if ap := d.AuthorizationPolicy; ap != nil {
			c.doc = d
			c.policy(ap)
		}
	}
	sort.SliceStable(c.out, func(i, j int) bool {
		a, b := c.out[i], c.out[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Path < b.Path
	})
	return c.out
}

type checker struct {
	hasAuthn bool
	issuers  map[string]bool // issuers of all jwtRules
	split    map[string]bool // claims some jwtRule splits on spaces
	doc      *policy.Document
	out      []Finding
	// reportedNoAuthn keeps one no-authentication finding per policy.
	reportedNoAuthn map[string]bool
}

func (c *checker) add(path, code, msg, fix string) {
	c.out = append(c.out, Finding{
		File: c.doc.File, Line: c.doc.FieldLine(path), Policy: c.doc.ID(),
		Path: path, Code: code, Message: msg, Fix: fix,
	})
}

func (c *checker) policy(ap *securityv1beta1.AuthorizationPolicy) {
	if ap.GetAction() == securityv1beta1.AuthorizationPolicy_ALLOW && len(ap.GetRules()) == 0 {
		c.add("spec.rules", CodeAllowsNothing,
			"an ALLOW policy without rules matches no request, so it denies every request to the workload",
			"to allow everything write `rules: [{}]`; to deny everything say so with a DENY policy, or remove this policy")
	}
	for i, r := range ap.GetRules() {
		rp := fmt.Sprintf("spec.rules[%d]", i)
		for j, f := range r.GetFrom() {
			s := f.GetSource()
			sp := fmt.Sprintf("%s.from[%d].source", rp, j)
			c.requestPrincipals(sp+".requestPrincipals", s.GetRequestPrincipals())
			c.requestPrincipals(sp+".notRequestPrincipals", s.GetNotRequestPrincipals())
			c.peerPrincipals(sp+".principals", s.GetPrincipals())
			c.peerPrincipals(sp+".notPrincipals", s.GetNotPrincipals())
		}
		for j, t := range r.GetTo() {
			op := fmt.Sprintf("%s.to[%d].operation", rp, j)
			c.hosts(op+".hosts", t.GetOperation().GetHosts())
			c.hosts(op+".notHosts", t.GetOperation().GetNotHosts())
		}
		for j, w := range r.GetWhen() {
			c.condition(fmt.Sprintf("%s.when[%d]", rp, j), w)
		}
	}
}

// v1IssuerRE matches an Entra v1 issuer's iss-part as a user would write
// it in a principal pattern (with or without its trailing slash).
var v1IssuerRE = regexp.MustCompile(`^https://sts\.windows\.net/[^/]+$`)

func (c *checker) requestPrincipals(path string, values []string) {
	if len(values) > 0 {
		c.needAuthn(path)
	}
	for i, v := range values {
		p := fmt.Sprintf("%s[%d]", path, i)
		if v == "*" {
			continue
		}
		if looksLikePeerPrincipal(v) {
			c.add(p, CodePeerPrincipalAsRequest,
				fmt.Sprintf("%q looks like a workload (mTLS) identity, but requestPrincipals are JWT principals \"<iss>/<sub>\"", v),
				"match workload identities with source.principals; keep requestPrincipals for tokens")
			continue
		}
		slash := strings.LastIndexByte(v, '/')
		if slash < 0 {
			continue
		}
		iss, sub := v[:slash], v[slash+1:]
		switch {
		case v1IssuerRE.MatchString(iss) && (sub == "*" || strings.HasSuffix(sub, "*")):
			// https://sts.windows.net/<tid>/* : split at the last '/',
			// the issuer part lacks the v1 issuer's trailing slash.
			c.add(p, CodeV1PrincipalPattern,
				fmt.Sprintf("%q is split at its last '/' (Istio ≥ 1.22): it requires iss %q, but Entra v1 tokens carry %q, so it never matches", v, iss, iss+"/"),
				fmt.Sprintf("write %q (the v1 issuer keeps its trailing slash, so v1 principals contain \"//\")", iss+"//"+sub))
			continue
		case strings.Contains(iss, "*") && !strings.HasPrefix(iss, "*"):
			c.add(p, CodeIssuerWildcard,
				fmt.Sprintf("%q puts a wildcard inside the issuer part %q; Istio ≥ 1.22 splits the pattern at its last '/' and matches the issuer exactly (or by suffix when the pattern starts with '*')", v, iss),
				"name each issuer in full, one pattern per issuer (\"<iss>/*\")")
			continue
		case sub == "*" && !c.issuers[iss] && c.prefixOfIssuer(iss) != "":
			c.add(p, CodeIssuerWildcard,
				fmt.Sprintf("%q is split at its last '/' (Istio ≥ 1.22): it requires iss to be exactly %q, not any issuer that starts with it such as %q", v, iss, c.prefixOfIssuer(iss)),
				fmt.Sprintf("write %q", c.prefixOfIssuer(iss)+"/*"))
			continue
		}
		if !strings.HasPrefix(v, "*") && c.hasAuthn && !c.issuers[iss] && !strings.Contains(iss, "{tenantid}") {
			c.add(p, CodeUnknownIssuer,
				fmt.Sprintf("issuer %q is not the issuer of any jwtRule, so no verified token can carry it (%s)", iss, c.knownIssuers()),
				fmt.Sprintf("add a RequestAuthentication jwtRule with issuer %q, or correct the issuer here", iss))
		}
	}
}

// prefixOfIssuer returns a jwtRule issuer that starts with iss, or "".
func (c *checker) prefixOfIssuer(iss string) string {
	var found []string
	for known := range c.issuers {
		if strings.HasPrefix(known, iss) && known != iss {
			found = append(found, known)
		}
	}
	if len(found) == 0 {
		return ""
	}
	sort.Strings(found)
	return found[0]
}

func (c *checker) knownIssuers() string {
	if len(c.issuers) == 0 {
		return "no jwtRule names an issuer"
	}
	var list []string
	for iss := range c.issuers {
		list = append(list, fmt.Sprintf("%q", iss))
	}
	sort.Strings(list)
	return "jwtRules accept " + strings.Join(list, ", ")
}

// looksLikePeerPrincipal reports whether v has the shape of a SPIFFE
// workload identity: "<trust domain>/ns/<ns>/sa/<sa>".
func looksLikePeerPrincipal(v string) bool {
	v = strings.TrimPrefix(v, "spiffe://")
	parts := strings.Split(v, "/")
	return len(parts) == 5 && parts[1] == "ns" && parts[3] == "sa"
}

func (c *checker) peerPrincipals(path string, values []string) {
	for i, v := range values {
		if strings.HasPrefix(v, "https://") || strings.HasPrefix(v, "http://") {
			c.add(fmt.Sprintf("%s[%d]", path, i), CodeRequestPrincipalAsPeer,
				fmt.Sprintf("%q looks like a token issuer, but principals are workload (mTLS) identities \"<trust domain>/ns/<ns>/sa/<sa>\"", v),
				"match JWT principals with source.requestPrincipals (\"<iss>/<sub>\")")
		}
	}
}

func (c *checker) hosts(path string, values []string) {
	has := map[string]bool{}
	for _, v := range values {
		has[strings.ToLower(v)] = true
	}
	for i, v := range values {
		lv := strings.ToLower(v)
		if v == "*" || strings.HasSuffix(v, "*") || hasPort(lv) || has[lv+":*"] {
			continue
		}
		c.add(fmt.Sprintf("%s[%d]", path, i), CodeHostWithoutPort,
			fmt.Sprintf("%q matches the Host header only without a port; a request to %q carries one and does not match", v, v+":8080"),
			fmt.Sprintf("list %q as well", v+":*"))
	}
}

// hasPort reports whether a host pattern ends in ":port" (or ":*").
func hasPort(h string) bool {
	if ap, err := netip.ParseAddrPort(h); err == nil && ap.IsValid() {
		return true
	}
	if strings.HasPrefix(h, "[") {
		return strings.Contains(h, "]:")
	}
	i := strings.LastIndexByte(h, ':')
	return i >= 0 && strings.Count(h, ":") == 1
}

func (c *checker) condition(path string, w *securityv1beta1.Condition) {
	key := w.GetKey()
	if !strings.HasPrefix(key, "request.auth.") {
		return
	}
	c.needAuthn(path + ".key")
	claim, ok := strings.CutPrefix(key, "request.auth.claims[")
	if !ok {
		if key == "request.auth.presenter" {
			c.add(path+".key", CodePresenterV1,
				"request.auth.presenter reads only the azp claim; Entra v1 tokens name the client in appid instead, so v1 tokens never match",
				"accept v2 tokens only (accessTokenAcceptedVersion: 2), or match request.auth.claims[appid] as well")
		}
		return
	}
	claim = strings.TrimSuffix(claim, "]")
	if strings.Contains(claim, "][") {
		return // nested claim
	}
	switch claim {
	case "scp":
		if c.split[claim] {
			return
		}
		for i, v := range w.GetValues() {
			if !strings.Contains(v, " ") {
				c.add(fmt.Sprintf("%s.values[%d]", path, i), CodeScopeNotSplit,
					fmt.Sprintf("Entra puts delegated scopes in scp as one space-separated string; %q matches only a token whose scp is exactly %q, not one that also has other scopes", v, v),
					"add `spaceDelimitedClaims: [scp]` to the jwtRule (Istio ≥ 1.28), so each scope matches on its own")
				break
			}
		}
	case "groups":
		c.add(path+".key", CodeGroupsOverage,
			"users in more groups than fit in a token (200 in a JWT) get no groups claim at all (the overage form: _claim_names/_claim_sources), so this condition denies them",
			"prefer app roles (request.auth.claims[roles]) assigned to the groups, or configure groups claims filtered to the application's groups")
	}
}

func (c *checker) needAuthn(path string) {
	if c.hasAuthn {
		return
	}
	if c.reportedNoAuthn == nil {
		c.reportedNoAuthn = map[string]bool{}
	}
	if c.reportedNoAuthn[c.doc.ID()] {
		return
	}
	c.reportedNoAuthn[c.doc.ID()] = true
	c.add(path, CodeNoAuthentication,
		"this rule looks at the request's JWT, but no RequestAuthentication is loaded, so every request is anonymous and the rule never matches",
		"add a RequestAuthentication with a jwtRule for your issuer (and load it with these policies)")
}
