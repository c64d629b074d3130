package policy

import (
	"net/http"
	"net/netip"

	"github.com/idgate/idgate/request"
)

// Reason is a stable code for why a request was allowed or denied. The
// values are part of idgate's contract: audit records, metrics labels,
// explain and test output use them.
//
//   - allowed_no_policies: no DENY policy matched and there is no ALLOW
//     policy, so everything is allowed (Istio's default);
//   - allowed_by_policy: no DENY policy matched and an ALLOW policy did;
//   - denied_by_policy: a DENY policy matched (403);
//   - no_allow_match: no DENY policy matched, there are ALLOW policies and
//     none matched (403).
type Reason string

// The reasons Evaluate gives.
const (
	AllowedNoPolicies Reason = "allowed_no_policies"
	AllowedByPolicy   Reason = "allowed_by_policy"
	DeniedByPolicy    Reason = "denied_by_policy"
	NoAllowMatch      Reason = "no_allow_match"
)

// Match names a policy that matched a request and the index of its first
// rule that did. The zero Match means no policy matched.
type Match struct {
	Policy string `json:"policy"` // "namespace/name"
	Rule   int    `json:"rule"`   // index into spec.rules
	// Provider is the extension provider a CUSTOM policy names.
	Provider string `json:"provider,omitempty"`
}

// Matched reports whether m names a policy.
func (m Match) Matched() bool { return m.Policy != "" }

// Outcome is what a set of policies decides for a request.
type Outcome struct {
	Allowed bool `json:"allowed"`
	// Status is 200 when allowed, 403 when denied. (401 belongs to
	// authentication, which runs before authorization.)
	Status int    `json:"status"`
	Reason Reason `json:"reason"`
	// By is the deciding policy and rule: the matching DENY policy, or
	// the matching ALLOW policy; zero for allowed_no_policies and
	// no_allow_match.
	By Match `json:"by,omitzero"`
	// Custom is the first matching CUSTOM policy. Authorization does not
	// decide CUSTOM policies: idgate is itself the external authorizer
	// they name, so the caller decides what a CUSTOM match means (Istio
	// calls the provider and denies when it denies). CUSTOM rules cannot
	// use request.auth.* or requestPrincipals (Istio's validation), so
	// they match alike before and after authentication.
	Custom Match `json:"custom,omitzero"`
	// Audit is the first matching AUDIT policy: the request is to be
	// audited. AUDIT policies never change a decision.
	Audit Match `json:"audit,omitzero"`
}

// Decision is the authorization decision for one request. Its Outcome
// is what is enforced; DryRun is what would be decided if the dry-run
// policies (annotation istio.io/dry-run: "true") were enforced too, and
// is the zero Outcome when the set has no dry-run policy.
type Decision struct {
	Outcome
	DryRun Outcome `json:"dryRun,omitzero"`
}

// HasDryRun reports whether the set that made d has dry-run policies, so
// that d.DryRun is meaningful.
func (d Decision) HasDryRun() bool { return d.DryRun.Status != 0 }

// Evaluate decides a request the way Istio's RBAC filters do
// (istio-semantics.md §1.3, §4.1): a matching DENY policy denies; else
// with no ALLOW policy the request is allowed; else a matching ALLOW
// policy allows it; else it is denied. CUSTOM and AUDIT matches are
// reported, never decide. Dry-run policies are evaluated into
// Decision.DryRun and never enforced.
//
// a must hold the normalized path (request.NormalizePath); id is the
// verified identity, nil for an anonymous request. When tr is non-nil,
// Evaluate records in it how every policy and rule matched or failed; when
// it is nil, Evaluate does not allocate.
func (s *Set) Evaluate(a *request.Attributes, id *request.Identity, tr *Trace) Decision {
	var zero request.Attributes
	if a == nil {
		a = &zero
	}
	e := evaluator{a: a, id: id}
	if s == nil {
		s = &Set{}
	}
	if tr != nil {
		tr.Policies = tr.Policies[:0]
		for _, p := range s.all {
			e.trace(p, tr)
		}
	}
	var d Decision
	d.Outcome = e.decide(s.enforced[Custom], s.enforced[Deny], s.enforced[Allow], s.enforced[Audit], nil, nil, nil, nil)
	if len(s.dryRun[Custom])+len(s.dryRun[Deny])+len(s.dryRun[Allow])+len(s.dryRun[Audit]) > 0 {
		d.DryRun = e.decide(s.enforced[Custom], s.enforced[Deny], s.enforced[Allow], s.enforced[Audit],
			s.dryRun[Custom], s.dryRun[Deny], s.dryRun[Allow], s.dryRun[Audit])
	}
	if tr != nil {
		tr.Decision = d
	}
	return d
}

// decide computes an outcome from the policies of each action; the
// second group is evaluated after the first (dry-run policies after the
// enforced ones).
func (e *evaluator) decide(custom, deny, allow, audit, custom2, deny2, allow2, audit2 []*compiled) Outcome {
	var o Outcome
	o.Custom = e.first(custom, custom2)
	o.Audit = e.first(audit, audit2)
	if m := e.first(deny, deny2); m.Matched() {
		o.Status, o.Reason, o.By = http.StatusForbidden, DeniedByPolicy, m
		return o
	}
	if len(allow)+len(allow2) == 0 {
		o.Allowed, o.Status, o.Reason = true, http.StatusOK, AllowedNoPolicies
		return o
	}
	if m := e.first(allow, allow2); m.Matched() {
		o.Allowed, o.Status, o.Reason, o.By = true, http.StatusOK, AllowedByPolicy, m
		return o
	}
	o.Status, o.Reason = http.StatusForbidden, NoAllowMatch
	return o
}

// evaluator evaluates policies against one request.
type evaluator struct {
	a  *request.Attributes
	id *request.Identity
}

// first returns the first policy of ps, then of more, that matches.
func (e *evaluator) first(ps, more []*compiled) Match {
	for _, list := range [2][]*compiled{ps, more} {
		for _, p := range list {
			if r := e.policy(p, nil); r >= 0 {
				return Match{Policy: p.id, Rule: r, Provider: p.provider}
			}
		}
	}
	return Match{}
}

// policy returns the index of the first rule of p that matches, or -1. A
// policy without rules matches nothing. With pt non-nil every rule is
// evaluated and recorded.
func (e *evaluator) policy(p *compiled, pt *PolicyTrace) int {
	match := -1
	for i := range p.rules {
		r := &p.rules[i]
		var rt *RuleTrace
		if pt != nil {
			pt.Rules = append(pt.Rules, RuleTrace{Rule: r.index, Checks: []Check{}})
			rt = &pt.Rules[len(pt.Rules)-1]
		}
		if e.rule(r, rt) && match < 0 {
			match = r.index
			if pt == nil {
				return match
			}
		}
	}
	return match
}

// rule reports whether r matches: some from entry, some to entry and all
// conditions (istio-semantics.md §4.3). With rt non-nil every part is
// evaluated and recorded; without, evaluation stops at the first failure.
func (e *evaluator) rule(r *rule, rt *RuleTrace) bool {
	ok := e.anyOf(r.from, rt)
	if !ok && rt == nil {
		return false
	}
	ok = e.anyOf(r.to, rt) && ok
	if !ok && rt == nil {
		return false
	}
	for i := range r.when {
		if !e.check(&r.when[i], rt) {
			ok = false
			if rt == nil {
				return false
			}
		}
	}
	if rt != nil {
		rt.Matched = ok
	}
	return ok
}

// anyOf reports whether any entry of a from or to list matches, all
// checks of an entry being required; an empty list matches.
func (e *evaluator) anyOf(entries [][]check, rt *RuleTrace) bool {
	if len(entries) == 0 {
		return true
	}
	for _, checks := range entries {
		if e.all(checks, rt) {
			return true
		}
	}
	return false
}

// all reports whether every check passes, stopping at the first failure.
func (e *evaluator) all(checks []check, rt *RuleTrace) bool {
	for i := range checks {
		if !e.check(&checks[i], rt) {
			return false
		}
	}
	return true
}

// check evaluates one check, recording it in rt when rt is non-nil.
func (e *evaluator) check(c *check, rt *RuleTrace) bool {
	hit := e.test(c)
	ok := (hit >= 0) != c.neg
	if rt != nil {
		rt.Checks = append(rt.Checks, Check{Field: c.field, Matched: ok, Detail: e.explain(c, hit)})
	}
	return ok
}

// test returns the index of the first pattern of c that matches the
// request, or -1 when none does or the attribute is absent.
func (e *evaluator) test(c *check) int {
	a, id := e.a, e.id
	switch c.attr {
	case attrSourcePrincipal:
		return matchStrs(c.strs, a.SourcePrincipal)
	case attrTrustDomain:
		if a.SourcePrincipal == "" {
			return -1
		}
		return matchStrs(c.strs, trustDomain(a.SourcePrincipal))
	case attrSourceNamespace:
		if a.SourceNamespace == "" {
			return -1
		}
		for i := range c.globs {
			if c.globs[i].match(a.SourceNamespace) {
				return i
			}
		}
	case attrServiceAccount:
		if a.SourcePrincipal == "" {
			return -1
		}
		for i := range c.accounts {
			if c.accounts[i].match(a.SourcePrincipal) {
				return i
			}
		}
	case attrRequestPrincipal:
		if id == nil {
			return -1
		}
		for i := range c.principals {
			if c.principals[i].match(id.Issuer, id.Subject) {
				return i
			}
		}
	case attrAudiences:
		if id == nil {
			return -1
		}
		for i := range c.strs {
			for _, aud := range id.Audiences {
				if aud != "" && c.strs[i].match(aud) {
					return i
				}
			}
		}
	case attrPresenter:
		if id == nil {
			return -1
		}
		return matchStrs(c.strs, id.Presenter)
	case attrClaim:
		if id == nil {
			return -1
		}
		v, _ := claimValue(id.Claims, c.claim)
		return matchClaim(c.strs, v)
	case attrSourceIP:
		return matchAddr(c.prefixes, a.SourceIP)
	case attrRemoteIP:
		return matchAddr(c.prefixes, a.RemoteIP)
	case attrDestinationIP:
		return matchAddr(c.prefixes, a.DestinationIP)
	case attrDestinationPort:
		if a.DestinationPort <= 0 {
			return -1
		}
		for i, p := range c.ports {
			if p == a.DestinationPort {
				return i
			}
		}
	case attrHost:
		return matchStrs(c.strs, a.Host)
	case attrMethod:
		return matchStrs(c.strs, a.Method)
	case attrSNI:
		return matchStrs(c.strs, a.SNI)
	case attrPath:
		if a.Path == "" {
			return -1
		}
		for i := range c.paths {
			if c.paths[i].match(a.Path) {
				return i
			}
		}
	case attrHeader:
		var buf [2]string
		vals, sep := headerValues(a, c, &buf)
		if len(vals) == 0 {
			return -1
		}
		for i := range c.strs {
			if c.strs[i].kind == strPresent || c.strs[i].matchJoined(vals, sep) {
				return i
			}
		}
	}
	return -1
}

// matchStrs matches a single-valued attribute; "" is absent.
func matchStrs(ms []strMatcher, s string) int {
	if s == "" {
		return -1
	}
	for i := range ms {
		if ms[i].match(s) {
			return i
		}
	}
	return -1
}

// matchClaim matches a claim value: a string as a whole, a list when any
// of its string elements matches; other types never match
// (istio-semantics.md §4.9).
func matchClaim(ms []strMatcher, v any) int {
	switch v := v.(type) {
	case string:
		return matchStrs(ms, v)
	case []any:
		for i := range ms {
			for _, el := range v {
				if s, ok := el.(string); ok && s != "" && ms[i].match(s) {
					return i
				}
			}
		}
	case []string:
		for i := range ms {
			for _, s := range v {
				if s != "" && ms[i].match(s) {
					return i
				}
			}
		}
	}
	return -1
}

func matchAddr(ps []netip.Prefix, a netip.Addr) int {
	if !a.IsValid() {
		return -1
	}
	a = requestAddr(a)
	for i, p := range ps {
		if p.Contains(a) {
			return i
		}
	}
	return -1
}

// headerValues returns the values of the header c reads, and the byte
// Envoy joins them with; buf provides storage for pseudo headers.
func headerValues(a *request.Attributes, c *check, buf *[2]string) ([]string, byte) {
	one := func(s string) []string {
		if s == "" {
			return nil
		}
		buf[0] = s
		return buf[:1]
	}
	switch c.pseudo {
	case pseudoAuthority:
		return one(a.Host), ','
	case pseudoMethod:
		return one(a.Method), ','
	case pseudoScheme:
		return one(a.Scheme), ','
	case pseudoPath:
		if a.Path == "" {
			return nil, '?'
		}
		buf[0], buf[1] = a.Path, a.Query
		if a.Query == "" {
			return buf[:1], '?'
		}
		return buf[:2], '?'
	}
	return a.Header[c.header], ','
}
