package policy

import (
	"fmt"
	"net/netip"
	"net/textproto"
	"slices"
	"sort"
	"strconv"
	"strings"

	securityv1beta1 "istio.io/api/security/v1beta1"
)

// Action is what an AuthorizationPolicy does when it matches.
type Action uint8

// The actions, in the order idgate evaluates them.
const (
	Custom Action = iota // hand the request to an external authorizer
	Deny                 // deny (403)
	Allow                // allow (the default action)
	Audit                // mark for auditing; never decides
)

// String returns the action as Istio spells it: "CUSTOM", "DENY", "ALLOW"
// or "AUDIT".
func (a Action) String() string {
	switch a {
	case Custom:
		return "CUSTOM"
	case Deny:
		return "DENY"
	case Allow:
		return "ALLOW"
	case Audit:
		return "AUDIT"
	}
	return "Action(" + strconv.Itoa(int(a)) + ")"
}

// Set is a compiled set of AuthorizationPolicies, ready to evaluate
// requests. It is immutable and safe for concurrent use; a reload compiles
// a new Set and swaps it in.
//
// All policies of a Set apply to the one workload idgate protects:
// selectors and targetRefs are not evaluated (the loader validates them).
type Set struct {
	// all holds every policy in evaluation order: by action (CUSTOM,
	// DENY, ALLOW, AUDIT), enforced before dry-run, then by ID.
	all []*compiled
	// enforced and dryRun hold the same policies by action.
	enforced [4][]*compiled
	dryRun   [4][]*compiled
}

// compiled is one compiled AuthorizationPolicy.
type compiled struct {
	id       string // "namespace/name"
	action   Action
	provider string // CUSTOM only
	dryRun   bool
	rules    []rule
}

// rule is one compiled rule: it matches when some from entry, some to
// entry and every condition match (authorization_policy.proto, Rule).
type rule struct {
	index int
	from  [][]check // OR of ANDs; none: any source
	to    [][]check // OR of ANDs; none: any operation
	when  []check   // AND
}

// attr names the request attribute a check reads.
type attr uint8

const (
	attrSourcePrincipal  attr = iota // principals, source.principal
	attrSourceNamespace              // namespaces, source.namespace
	attrServiceAccount               // serviceAccounts, source.serviceAccount
	attrTrustDomain                  // trustDomains, source.trustDomain
	attrRequestPrincipal             // requestPrincipals, request.auth.principal
	attrAudiences                    // request.auth.audiences
	attrPresenter                    // request.auth.presenter
	attrClaim                        // request.auth.claims[...]
	attrSourceIP                     // ipBlocks, source.ip
	attrRemoteIP                     // remoteIpBlocks, remote.ip
	attrDestinationIP                // destination.ip
	attrDestinationPort              // ports, destination.port
	attrHost                         // hosts
	attrMethod                       // methods
	attrPath                         // paths
	attrHeader                       // request.headers[...]
	attrSNI                          // connection.sni
)

// pseudo headers request.headers[...] can name; Envoy keeps the
// authority, method, path and scheme there.
type pseudo uint8

const (
	pseudoNone pseudo = iota
	pseudoAuthority
	pseudoMethod
	pseudoPath
	pseudoScheme
)

// check is one field (or one condition's values or notValues) of a rule,
// compiled: it passes when some pattern matches the attribute, or, for a
// negative field, when none does (an absent attribute matches no
// pattern).
type check struct {
	field    string   // as the trace names it: "from[0].source.paths"
	attr     attr     //
	neg      bool     // notX / notValues
	patterns []string // as written, for the trace

	header string   // attrHeader: canonical name, or as written for a pseudo header
	pseudo pseudo   // attrHeader: a pseudo header
	claim  []string // attrClaim: the claim path

	strs       []strMatcher
	prefixes   []netip.Prefix
	ports      []int
	paths      []pathMatcher
	principals []principalMatcher
	accounts   []accountMatcher
	globs      []glob
}

// Compile compiles the AuthorizationPolicy documents among docs
// (RequestAuthentication documents are skipped) into a Set. Everything
// that can be done before a request arrives is done here: patterns are
// classified, hosts lower-cased, CIDRs parsed, header names canonicalized,
// claim paths split, path templates parsed. A document whose DryRun is set
// (annotation istio.io/dry-run: "true") is compiled as a dry-run policy.
//
// Compile fails, with a *LoadError naming file, line and field of every
// problem, on what cannot be evaluated: an unknown or unsupported
// condition key (experimental.envoy.filters.* reads Envoy metadata idgate
// does not have), a malformed IP, CIDR, port, path template or bracketed
// key, an unknown action, a null rule, or CUSTOM policies naming more than
// one provider. Istio skips such rules with a log line; idgate refuses to
// load them, so that no policy is silently weaker or stronger than
// written.
func Compile(docs []*Document) (*Set, error) {
	s := &Set{}
	var issues []Issue
	providers := map[string]bool{}
	for _, d := range docs {
		if d == nil || d.RequestAuthentication != nil || (d.AuthorizationPolicy == nil && d.Kind != KindAuthorizationPolicy) {
			continue
		}
		c := &compiler{doc: d}
		p := c.policy()
		issues = append(issues, c.issues...)
		if p == nil {
			continue
		}
		if p.action == Custom {
			providers[p.provider] = true
		}
		s.all = append(s.all, p)
	}
	if len(providers) > 1 {
		names := make([]string, 0, len(providers))
		for n := range providers {
			names = append(names, strconv.Quote(n))
		}
		sort.Strings(names)
		for _, d := range docs {
			if d != nil && d.AuthorizationPolicy != nil && d.AuthorizationPolicy.Action == securityv1beta1.AuthorizationPolicy_CUSTOM {
				issues = append(issues, Issue{File: d.File, Line: d.FieldLine("spec.provider.name"), Path: "spec.provider.name",
					Msg: fmt.Sprintf("CUSTOM policies of one workload must name one provider; these name %s", strings.Join(names, ", "))})
				break
			}
		}
	}
	if len(issues) > 0 {
		return nil, &LoadError{Issues: issues}
	}
	sort.SliceStable(s.all, func(i, j int) bool {
		a, b := s.all[i], s.all[j]
		if a.action != b.action {
			return a.action < b.action
		}
		if a.dryRun != b.dryRun {
			return !a.dryRun
		}
		return a.id < b.id
	})
	for _, p := range s.all {
		if p.dryRun {
			s.dryRun[p.action] = append(s.dryRun[p.action], p)
		} else {
			s.enforced[p.action] = append(s.enforced[p.action], p)
		}
	}
	return s, nil
}

// compiler compiles one document, collecting its problems.
type compiler struct {
	doc    *Document
	issues []Issue
}

func (c *compiler) errorf(path, format string, args ...any) {
	c.issues = append(c.issues, Issue{
		File: c.doc.File,
		Line: c.doc.FieldLine(path),
		Path: path,
		Msg:  fmt.Sprintf("policy %s: ", c.doc.ID()) + fmt.Sprintf(format, args...),
	})
}

func (c *compiler) policy() *compiled {
	spec := c.doc.AuthorizationPolicy
	if spec == nil {
		spec = &securityv1beta1.AuthorizationPolicy{}
	}
	p := &compiled{id: c.doc.ID(), dryRun: c.doc.DryRun}
	switch spec.Action {
	case securityv1beta1.AuthorizationPolicy_ALLOW:
		p.action = Allow
	case securityv1beta1.AuthorizationPolicy_DENY:
		p.action = Deny
	case securityv1beta1.AuthorizationPolicy_AUDIT:
		p.action = Audit
	case securityv1beta1.AuthorizationPolicy_CUSTOM:
		p.action = Custom
		p.provider = spec.GetProvider().GetName()
	default:
		c.errorf("spec.action", "unknown action %d", spec.Action)
		return nil
	}
	before := len(c.issues)
	for i, r := range spec.Rules {
		path := fmt.Sprintf("spec.rules[%d]", i)
		if r == nil {
			c.errorf(path, "rule is null")
			continue
		}
		p.rules = append(p.rules, c.rule(i, r, path))
	}
	if len(c.issues) > before {
		return nil
	}
	return p
}

func (c *compiler) rule(index int, r *securityv1beta1.Rule, path string) rule {
	out := rule{index: index}
	for i, f := range r.From {
		if f.GetSource() == nil {
			c.errorf(fmt.Sprintf("%s.from[%d]", path, i), "from entry has no source")
			continue
		}
		out.from = append(out.from, c.source(f.Source, i, fmt.Sprintf("%s.from[%d].source", path, i)))
	}
	for i, t := range r.To {
		if t.GetOperation() == nil {
			c.errorf(fmt.Sprintf("%s.to[%d]", path, i), "to entry has no operation")
			continue
		}
		out.to = append(out.to, c.operation(t.Operation, i, fmt.Sprintf("%s.to[%d].operation", path, i)))
	}
	for i, w := range r.When {
		if w == nil {
			c.errorf(fmt.Sprintf("%s.when[%d]", path, i), "condition is null")
			continue
		}
		out.when = append(out.when, c.condition(w, i, fmt.Sprintf("%s.when[%d]", path, i))...)
	}
	return out
}

// fieldPair describes one Source or Operation field pair for compilation.
type fieldPair struct {
	name, notName string
	attr          attr
	values, not   []string
}

func (c *compiler) source(s *securityv1beta1.Source, i int, path string) []check {
	fields := []fieldPair{
		{"principals", "notPrincipals", attrSourcePrincipal, s.Principals, s.NotPrincipals},
		{"requestPrincipals", "notRequestPrincipals", attrRequestPrincipal, s.RequestPrincipals, s.NotRequestPrincipals},
		{"namespaces", "notNamespaces", attrSourceNamespace, s.Namespaces, s.NotNamespaces},
		{"serviceAccounts", "notServiceAccounts", attrServiceAccount, s.ServiceAccounts, s.NotServiceAccounts},
		{"trustDomains", "notTrustDomains", attrTrustDomain, s.TrustDomains, s.NotTrustDomains},
		{"ipBlocks", "notIpBlocks", attrSourceIP, s.IpBlocks, s.NotIpBlocks},
		{"remoteIpBlocks", "notRemoteIpBlocks", attrRemoteIP, s.RemoteIpBlocks, s.NotRemoteIpBlocks},
	}
	return c.fields(fields, fmt.Sprintf("from[%d].source.", i), path)
}

func (c *compiler) operation(o *securityv1beta1.Operation, i int, path string) []check {
	fields := []fieldPair{
		{"hosts", "notHosts", attrHost, o.Hosts, o.NotHosts},
		{"ports", "notPorts", attrDestinationPort, o.Ports, o.NotPorts},
		{"methods", "notMethods", attrMethod, o.Methods, o.NotMethods},
		{"paths", "notPaths", attrPath, o.Paths, o.NotPaths},
	}
	return c.fields(fields, fmt.Sprintf("to[%d].operation.", i), path)
}

func (c *compiler) fields(fields []fieldPair, tracePrefix, path string) []check {
	var out []check
	for _, f := range fields {
		if len(f.values) > 0 {
			ch := check{field: tracePrefix + f.name, attr: f.attr}
			if c.patterns(&ch, f.values, path+"."+f.name) {
				out = append(out, ch)
			}
		}
		if len(f.not) > 0 {
			ch := check{field: tracePrefix + f.notName, attr: f.attr, neg: true}
			if c.patterns(&ch, f.not, path+"."+f.notName) {
				out = append(out, ch)
			}
		}
	}
	return out
}

func (c *compiler) condition(w *securityv1beta1.Condition, i int, path string) []check {
	base := check{field: fmt.Sprintf("when[%d] %s", i, w.Key)}
	if !c.key(&base, w.Key, path+".key") {
		return nil
	}
	if len(w.Values) == 0 && len(w.NotValues) == 0 {
		c.errorf(path, "condition %s has neither values nor notValues", w.Key)
		return nil
	}
	var out []check
	if len(w.Values) > 0 {
		ch := base
		if c.patterns(&ch, w.Values, path+".values") {
			out = append(out, ch)
		}
	}
	if len(w.NotValues) > 0 {
		ch := base
		ch.neg = true
		ch.field += " notValues"
		if c.patterns(&ch, w.NotValues, path+".notValues") {
			out = append(out, ch)
		}
	}
	return out
}

// key sets the attribute a condition key reads
// (https://istio.io/latest/docs/reference/config/security/conditions/).
func (c *compiler) key(ch *check, key, path string) bool {
	switch key {
	case "source.ip":
		ch.attr = attrSourceIP
	case "remote.ip":
		ch.attr = attrRemoteIP
	case "source.namespace":
		ch.attr = attrSourceNamespace
	case "source.principal":
		ch.attr = attrSourcePrincipal
	case "source.serviceAccount":
		ch.attr = attrServiceAccount
	case "source.trustDomain":
		ch.attr = attrTrustDomain
	case "request.auth.principal":
		ch.attr = attrRequestPrincipal
	case "request.auth.audiences":
		ch.attr = attrAudiences
	case "request.auth.presenter":
		ch.attr = attrPresenter
	case "destination.ip":
		ch.attr = attrDestinationIP
	case "destination.port":
		ch.attr = attrDestinationPort
	case "connection.sni":
		ch.attr = attrSNI
	case "destination.namespace", "destination.name", "destination.user":
		c.errorf(path, "condition key %s is not supported by Istio's AuthorizationPolicy", key)
		return false
	default:
		switch {
		case strings.HasPrefix(key, "request.headers"):
			name, ok := bracketed(key[len("request.headers"):])
			if !ok {
				c.errorf(path, "condition key %q must have the form request.headers[<name>]", key)
				return false
			}
			ch.attr = attrHeader
			ch.header, ch.pseudo = headerKey(name)
		case strings.HasPrefix(key, "request.auth.claims"):
			claim, ok := claimPath(key[len("request.auth.claims"):])
			if !ok {
				c.errorf(path, "condition key %q must have the form request.auth.claims[<name>] or request.auth.claims[<name>][<nested>]...", key)
				return false
			}
			ch.attr = attrClaim
			ch.claim = claim
		case strings.HasPrefix(key, "experimental.envoy.filters."):
			c.errorf(path, "condition key %s reads Envoy filter metadata, which idgate does not have; this condition is not supported", key)
			return false
		case strings.HasPrefix(key, "destination.labels"):
			c.errorf(path, "condition key %s is not supported by Istio's AuthorizationPolicy (use the selector)", key)
			return false
		default:
			c.errorf(path, "unknown condition key %q", key)
			return false
		}
	}
	return true
}

// headerKey returns how a request.headers[name] condition reads its
// header: a pseudo header kept in Attributes, or a canonical header name.
func headerKey(name string) (string, pseudo) {
	switch strings.ToLower(name) {
	case ":authority", "host":
		return name, pseudoAuthority
	case ":method":
		return name, pseudoMethod
	case ":path":
		return name, pseudoPath
	case ":scheme":
		return name, pseudoScheme
	}
	return textproto.CanonicalMIMEHeaderKey(name), pseudoNone
}

// bracketed returns the name of "[name]" (Istio's extractNameInBrackets).
func bracketed(s string) (string, bool) {
	if len(s) < 3 || s[0] != '[' || s[len(s)-1] != ']' {
		return "", false
	}
	return s[1 : len(s)-1], true
}

// claimPath splits "[a][b]" into ["a", "b"] (Istio's
// extractNameInNestedBrackets): a name runs from '[' to the next ']' and
// may hold dots and slashes; where the brackets do not nest cleanly the
// whole "[...]" is one name.
func claimPath(s string) ([]string, bool) {
	var path []string
	for rest := s; rest != ""; {
		end := strings.IndexByte(rest, ']')
		if rest[0] != '[' || end < 0 || strings.IndexByte(rest[1:end], '[') >= 0 {
			name, ok := bracketed(s)
			if !ok {
				return nil, false
			}
			return []string{name}, true
		}
		path = append(path, rest[1:end])
		rest = rest[end+1:]
	}
	for _, p := range path {
		if p == "" {
			return nil, false
		}
	}
	return path, len(path) > 0
}

// patterns compiles the values of one check; path names the list in
// issues.
func (c *compiler) patterns(ch *check, values []string, path string) bool {
	ok := true
	ch.patterns = values
	for i, v := range values {
		vpath := fmt.Sprintf("%s[%d]", path, i)
		switch ch.attr {
		case attrSourcePrincipal, attrTrustDomain, attrAudiences, attrPresenter, attrClaim, attrMethod, attrHeader, attrSNI:
			ch.strs = append(ch.strs, newStrMatcher(v, false))
		case attrHost:
			ch.strs = append(ch.strs, newStrMatcher(v, true))
		case attrSourceNamespace:
			ch.globs = append(ch.globs, newGlob(v))
		case attrServiceAccount:
			if strings.Count(v, "/") > 1 || strings.HasPrefix(v, "/") || strings.HasSuffix(v, "/") || strings.Contains(v, "*") {
				c.errorf(vpath, "service account %q must be \"<name>\" or \"<namespace>/<name>\", without wildcards", v)
				ok = false
				continue
			}
			ch.accounts = append(ch.accounts, newAccountMatcher(v, c.doc.Namespace))
		case attrRequestPrincipal:
			ch.principals = append(ch.principals, newPrincipalMatcher(v))
		case attrSourceIP, attrRemoteIP, attrDestinationIP:
			p, err := parsePrefix(v)
			if err != nil {
				c.errorf(vpath, "%v", err)
				ok = false
				continue
			}
			ch.prefixes = append(ch.prefixes, p)
		case attrDestinationPort:
			n, err := strconv.ParseUint(v, 10, 16)
			if err != nil {
				c.errorf(vpath, "bad port %q: want an integer from 0 to 65535", v)
				ok = false
				continue
			}
			ch.ports = append(ch.ports, int(n))
		case attrPath:
			if !isTemplate(v) {
				ch.paths = append(ch.paths, pathMatcher{str: newStrMatcher(v, false)})
				continue
			}
			t, err := parseTemplate(v)
			if err != nil {
				c.errorf(vpath, "%v", err)
				ok = false
				continue
			}
			ch.paths = append(ch.paths, pathMatcher{tmpl: &t})
		}
	}
	return ok
}

// Claims returns the claims (top-level names, sorted) that some rule of
// the set reads through request.auth.claims[...], dry-run policies
// included: the claims of an identity that can change a decision.
func (s *Set) Claims() []string {
	var names []string
	for _, p := range s.all {
		for _, r := range p.rules {
			for _, checks := range [][][]check{r.from, r.to, {r.when}} {
				for _, cs := range checks {
					for _, c := range cs {
						if c.attr == attrClaim && len(c.claim) > 0 {
							names = append(names, c.claim[0])
						}
					}
				}
			}
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}
