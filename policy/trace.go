package policy

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/idgate/idgate/request"
)

// Trace records how Evaluate reached a decision: for every policy, for
// every rule, which fields matched which request values and which did not.
// It is what `idgate explain` prints, as JSON or with String.
type Trace struct {
	Decision Decision      `json:"decision"`
	Policies []PolicyTrace `json:"policies"`
}

// PolicyTrace is the evaluation of one policy.
type PolicyTrace struct {
	Policy   string `json:"policy"` // "namespace/name"
	Action   string `json:"action"` // ALLOW, DENY, AUDIT or CUSTOM
	Provider string `json:"provider,omitempty"`
	DryRun   bool   `json:"dryRun,omitempty"`
	Matched  bool   `json:"matched"`
	// Rule is the index of the first matching rule, -1 when none matched.
	Rule  int         `json:"rule"`
	Rules []RuleTrace `json:"rules"` // empty for a policy without rules
}

// RuleTrace is the evaluation of one rule.
type RuleTrace struct {
	Rule    int  `json:"rule"` // index into spec.rules
	Matched bool `json:"matched"`
	// Checks are the fields and conditions evaluated, in order. Within a
	// from or to entry evaluation stops at the first field that fails;
	// from and to entries are tried until one matches.
	Checks []Check `json:"checks"`
}

// Check is one field or condition compared with the request.
type Check struct {
	// Field names it within the rule: "from[0].source.requestPrincipals",
	// "to[1].operation.notPaths", "when[0] request.auth.claims[groups]",
	// "when[0] request.headers[x-env] notValues".
	Field   string `json:"field"`
	Matched bool   `json:"matched"`
	// Detail says why, in words: `"/admin/x" matches none of ["/api/*"]`,
	// "no principal (anonymous request)".
	Detail string `json:"detail"`
}

// trace evaluates p into a new PolicyTrace of tr.
func (e *evaluator) trace(p *compiled, tr *Trace) {
	tr.Policies = append(tr.Policies, PolicyTrace{
		Policy:   p.id,
		Action:   p.action.String(),
		Provider: p.provider,
		DryRun:   p.dryRun,
		Rules:    []RuleTrace{},
	})
	pt := &tr.Policies[len(tr.Policies)-1]
	pt.Rule = e.policy(p, pt)
	pt.Matched = pt.Rule >= 0
}

// String formats the trace for people, one line per fact:
//
//	DENY foo/deny-admin: no rule matched
//	  foo/deny-admin rule 0: to[0].operation.paths: "/api/x" matches none of ["/admin/*"]
//	ALLOW foo/require-jwt: rule 1 matched
//	  foo/require-jwt rule 0: from[0].source.requestPrincipals: no principal (anonymous request)
//	  foo/require-jwt rule 1: matched: to[0].operation.paths: "/public/x" matches "/public/*"
//	decision: 200 allowed_by_policy (foo/require-jwt rule 1)
//
// A rule that did not match lists the checks that failed; a rule that
// matched lists the checks that passed.
func (t *Trace) String() string {
	var b strings.Builder
	for _, p := range t.Policies {
		b.WriteString(p.Action)
		b.WriteByte(' ')
		b.WriteString(p.Policy)
		if p.Provider != "" {
			fmt.Fprintf(&b, " (provider %q)", p.Provider)
		}
		if p.DryRun {
			b.WriteString(" (dry-run)")
		}
		switch {
		case len(p.Rules) == 0:
			b.WriteString(": no rules, matches no request\n")
		case p.Matched:
			fmt.Fprintf(&b, ": rule %d matched\n", p.Rule)
		default:
			b.WriteString(": no rule matched\n")
		}
		for _, r := range p.Rules {
			prefix := fmt.Sprintf("  %s rule %d: ", p.Policy, r.Rule)
			if r.Matched {
				prefix += "matched: "
			}
			wrote := false
			for _, c := range r.Checks {
				if c.Matched == r.Matched {
					fmt.Fprintf(&b, "%s%s: %s\n", prefix, c.Field, c.Detail)
					wrote = true
				}
			}
			if !wrote && r.Matched {
				fmt.Fprintf(&b, "%sempty rule, matches every request\n", prefix)
			}
		}
	}
	writeOutcome(&b, "decision", t.Decision.Outcome)
	if t.Decision.HasDryRun() {
		writeOutcome(&b, "dry-run decision", t.Decision.DryRun)
	}
	return b.String()
}

func writeOutcome(b *strings.Builder, label string, o Outcome) {
	fmt.Fprintf(b, "%s: %d %s", label, o.Status, o.Reason)
	if o.By.Matched() {
		fmt.Fprintf(b, " (%s rule %d)", o.By.Policy, o.By.Rule)
	}
	b.WriteByte('\n')
	if o.Custom.Matched() {
		fmt.Fprintf(b, "%s: CUSTOM %s rule %d for provider %q\n", label, o.Custom.Policy, o.Custom.Rule, o.Custom.Provider)
	}
	if o.Audit.Matched() {
		fmt.Fprintf(b, "%s: audited by %s rule %d\n", label, o.Audit.Policy, o.Audit.Rule)
	}
}

// explain says in words why check c passed or failed; hit is the index
// of the matching pattern or -1.
func (e *evaluator) explain(c *check, hit int) string {
	val, present := e.value(c)
	switch {
	case hit >= 0 && !c.neg:
		return fmt.Sprintf("%s matches %s", val, strconv.Quote(c.patterns[hit]))
	case hit >= 0:
		return fmt.Sprintf("%s matches excluded %s", val, strconv.Quote(c.patterns[hit]))
	case !present && c.neg:
		return val + "; a missing value matches no excluded value"
	case !present:
		return val
	default:
		return fmt.Sprintf("%s matches none of %s", val, quoteList(c.patterns))
	}
}

// value returns the request value check c reads, formatted, and whether
// it is present; for an absent value, a sentence saying why.
func (e *evaluator) value(c *check) (string, bool) {
	a, id := e.a, e.id
	str := func(s, absent string) (string, bool) {
		if s == "" {
			return absent, false
		}
		return showValue(s), true
	}
	const noPeer = "no peer identity (the connection is not mutual TLS)"
	switch c.attr {
	case attrSourcePrincipal:
		return str(a.SourcePrincipal, noPeer)
	case attrTrustDomain:
		if a.SourcePrincipal == "" {
			return noPeer, false
		}
		return "trust domain " + showValue(trustDomain(a.SourcePrincipal)), true
	case attrServiceAccount:
		if a.SourcePrincipal == "" {
			return noPeer, false
		}
		return "peer " + showValue(a.SourcePrincipal), true
	case attrSourceNamespace:
		return str(a.SourceNamespace, "no peer namespace (the connection is not mutual TLS)")
	case attrRequestPrincipal:
		switch {
		case id == nil:
			return "no principal (anonymous request)", false
		case id.Issuer == "":
			return `token has no "iss" claim`, false
		case id.Subject == "":
			return `token has no "sub" claim`, false
		}
		return showValue(id.Issuer + "/" + id.Subject), true
	case attrAudiences:
		switch {
		case id == nil:
			return "no audiences (anonymous request)", false
		case len(id.Audiences) == 0:
			return `token has no "aud" claim`, false
		}
		return valueList(id.Audiences), true
	case attrPresenter:
		if id == nil {
			return "no presenter (anonymous request)", false
		}
		return str(id.Presenter, `token has no "azp" claim`)
	case attrClaim:
		return claimDescription(id, c.claim)
	case attrSourceIP:
		return addrString(a.SourceIP, "no source IP")
	case attrRemoteIP:
		return addrString(a.RemoteIP, "no remote IP")
	case attrDestinationIP:
		return addrString(a.DestinationIP, "no destination IP")
	case attrDestinationPort:
		if a.DestinationPort <= 0 {
			return "no destination port", false
		}
		return strconv.Itoa(a.DestinationPort), true
	case attrHost:
		return str(a.Host, "no host (authority)")
	case attrMethod:
		return str(a.Method, "no method")
	case attrPath:
		return str(a.Path, "no path")
	case attrSNI:
		return str(a.SNI, "no SNI (the connection is not TLS)")
	case attrHeader:
		var buf [2]string
		vals, sep := headerValues(a, c, &buf)
		if len(vals) == 0 {
			return fmt.Sprintf("no header %q", c.header), false
		}
		return showValue(strings.Join(vals, string(sep))), true
	}
	return "?", false
}

// claimDescription formats the claim at path for the trace.
func claimDescription(id *request.Identity, path []string) (string, bool) {
	name := "[" + strings.Join(path, "][") + "]"
	if id == nil {
		return "no claims (anonymous request)", false
	}
	v, ok := claimValue(id.Claims, path)
	if !ok {
		return "token has no claim " + name, false
	}
	switch v := v.(type) {
	case string:
		return showValue(v), true
	case []string:
		return valueList(v), true
	case []any:
		return listOf(len(v), func(i int) string {
			if s, ok := v[i].(string); ok {
				return showValue(s)
			}
			return showRaw(fmt.Sprint(v[i]))
		}), true
	}
	kind := "not a string"
	switch v.(type) {
	case json.Number, float64, int, int64:
		kind = "a number"
	case bool:
		kind = "a boolean"
	case map[string]any:
		kind = "an object"
	case nil:
		kind = "null"
	}
	return fmt.Sprintf("claim %s is %s; only strings and lists of strings match", name, kind), false
}

func addrString(a netip.Addr, absent string) (string, bool) {
	if !a.IsValid() {
		return absent, false
	}
	return a.String(), true
}

// Request values are untrusted and may be large: the trace shows at most
// maxShownValues values of a list and maxShownLen bytes of a value.
const (
	maxShownValues = 8
	maxShownLen    = 256
)

// showValue formats a request value, cut to maxShownLen bytes.
func showValue(s string) string {
	if len(s) > maxShownLen {
		return strconv.Quote(s[:maxShownLen]) + fmt.Sprintf("… (%d bytes)", len(s))
	}
	return strconv.Quote(s)
}

// showRaw shortens an unquoted value to maxShownLen bytes.
func showRaw(s string) string {
	if len(s) > maxShownLen {
		return s[:maxShownLen] + fmt.Sprintf("… (%d bytes)", len(s))
	}
	return s
}

// valueList formats a list of request values.
func valueList(vs []string) string {
	return listOf(len(vs), func(i int) string { return showValue(vs[i]) })
}

// listOf formats a list of n request values, at most maxShownValues.
func listOf(n int, item func(i int) string) string {
	var b strings.Builder
	b.WriteByte('[')
	for i := 0; i < n; i++ {
		if i == maxShownValues {
			fmt.Fprintf(&b, ", … %d more", n-i)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(item(i))
	}
	b.WriteByte(']')
	return b.String()
}

// quoteList formats patterns: ["a", "b"].
func quoteList(vs []string) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, v := range vs {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Quote(v))
	}
	b.WriteByte(']')
	return b.String()
}
