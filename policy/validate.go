package policy

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"
	"google.golang.org/protobuf/reflect/protoreflect"
	securityv1beta1 "istio.io/api/security/v1beta1"
	typev1beta1 "istio.io/api/type/v1beta1"

	"github.com/idgate/idgate/token"
)

// Limits from Istio's CRD schema.
const (
	maxRules                = 512
	maxFrom                 = 512
	maxJWTRules             = 4096
	maxTargetRefs           = 16
	maxServiceAccounts      = 16
	maxServiceAccountLen    = 320
	maxSpaceDelimitedClaims = 64
	maxJWKSURILen           = 2048
	maxMatchLabels          = 4096
)

// validator checks one decoded document against Istio's validation rules
// (istio/istio pkg/config/validation and the CRD schema), plus the
// stricter checks idgate adds where Istio would silently accept a policy
// that cannot mean what it says.
type validator struct {
	doc      *Document
	errors   []Issue
	warnings []Issue
}

func (v *validator) issue(path, format string, args []any) Issue {
	return bounded(Issue{File: v.doc.File, Line: v.doc.FieldLine(path), Path: path, Msg: fmt.Sprintf(format, args...)})
}

func (v *validator) errorf(path, format string, args ...any) {
	v.errors = append(v.errors, v.issue(path, format, args))
}

func (v *validator) warnf(path, format string, args ...any) {
	v.warnings = append(v.warnings, v.issue(path, format, args))
}

// written reports whether the document wrote the field at path, even as an
// empty list.
func (v *validator) written(path string) bool {
	_, ok := v.doc.lines[path]
	return ok
}

func (v *validator) document() {
	v.metadata()
	switch {
	case v.doc.AuthorizationPolicy != nil:
		v.authorizationPolicy(v.doc.AuthorizationPolicy)
	case v.doc.RequestAuthentication != nil:
		v.requestAuthentication(v.doc.RequestAuthentication)
	}
}

var (
	// dns1123Label and dns1123Subdomain are Kubernetes' name syntaxes.
	dns1123Label     = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	dns1123Subdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	// qualifiedName is the name part of a label or annotation key;
	// labelValue a label's value.
	qualifiedName = regexp.MustCompile(`^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$`)
	labelValue    = regexp.MustCompile(`^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$`)
	// claimHeader is what Istio's CRD allows in outputClaimToHeaders.
	claimHeader = regexp.MustCompile(`^[-_A-Za-z0-9]+$`)
	// targetKind and targetGroup are the CRD's PolicyTargetReference syntax.
	targetKind  = regexp.MustCompile(`^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$`)
	targetGroup = regexp.MustCompile(`^$|^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
)

// keyProblem checks a Kubernetes label or annotation key: an optional
// DNS subdomain prefix and "/", then a name of at most 63 characters.
func keyProblem(key string) string {
	name := key
	if i := strings.LastIndexByte(key, '/'); i >= 0 {
		prefix := key[:i]
		name = key[i+1:]
		if prefix == "" || len(prefix) > 253 || !dns1123Subdomain.MatchString(prefix) {
			return fmt.Sprintf("key %q: the prefix before \"/\" must be a DNS subdomain", clip(key))
		}
	}
	if name == "" || len(name) > 63 || !qualifiedName.MatchString(name) {
		return fmt.Sprintf("key %q: the name must be 1-63 letters, digits, \"-\", \"_\" or \".\", starting and ending with a letter or digit", clip(key))
	}
	return ""
}

func (v *validator) metadata() {
	d := v.doc
	if d.Name != "" && (len(d.Name) > 253 || !dns1123Subdomain.MatchString(d.Name)) {
		v.errorf("metadata.name", "%q is not a valid name: lowercase letters, digits, \"-\" and \".\", starting and ending with a letter or digit, at most 253 characters", clip(d.Name))
	} else if d.Name == "" {
		v.errorf("metadata.name", "must not be empty")
	}
	if len(d.Namespace) > 63 || !dns1123Label.MatchString(d.Namespace) {
		v.errorf("metadata.namespace", "%q is not a valid namespace: lowercase letters, digits and \"-\", starting and ending with a letter or digit, at most 63 characters", clip(d.Namespace))
	}
	for _, k := range sortedKeys(d.Labels) {
		p := "metadata.labels[" + clip(k) + "]"
		if msg := keyProblem(k); msg != "" {
			v.errorf(p, "%s", msg)
		}
		if val := d.Labels[k]; len(val) > 63 || !labelValue.MatchString(val) {
			v.errorf(p, "value %q: at most 63 letters, digits, \"-\", \"_\" or \".\", starting and ending with a letter or digit", clip(val))
		}
	}
	for _, k := range sortedKeys(d.Annotations) {
		if msg := keyProblem(k); msg != "" {
			v.errorf("metadata.annotations["+clip(k)+"]", "%s", msg)
		}
	}
	if val, ok := d.Annotations[DryRunAnnotation]; ok {
		p := "metadata.annotations[" + DryRunAnnotation + "]"
		b, err := strconv.ParseBool(val)
		switch {
		case d.Kind != KindAuthorizationPolicy:
			v.errorf(p, "is only valid on an AuthorizationPolicy")
		case err != nil:
			v.errorf(p, "must be \"true\" or \"false\", got %q", clip(val))
		default:
			d.DryRun = b
		}
	}
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// targets checks selector, targetRef and targetRefs, which both kinds share.
func (v *validator) targets(sel *typev1beta1.WorkloadSelector, ref *typev1beta1.PolicyTargetReference, refs []*typev1beta1.PolicyTargetReference) {
	set := 0
	if sel != nil {
		set++
	}
	if ref != nil {
		set++
	}
	if len(refs) > 0 {
		set++
	}
	if set > 1 {
		v.errorf("spec", "only one of selector, targetRef or targetRefs can be set")
	}
	if sel != nil {
		labels := sel.GetMatchLabels()
		if len(labels) == 0 {
			v.warnf("spec.selector", "workload selector specified without labels")
		}
		if len(labels) > maxMatchLabels {
			v.errorf("spec.selector.matchLabels", "at most %d labels", maxMatchLabels)
		}
		for _, k := range sortedKeys(labels) {
			p := "spec.selector.matchLabels[" + clip(k) + "]"
			val := labels[k]
			switch {
			case k == "":
				v.errorf(p, "label key must not be empty")
			case strings.Contains(k, "*") || strings.Contains(val, "*"):
				v.errorf(p, "wildcards are not supported in selectors")
			case len(val) > 63:
				v.errorf(p, "label value longer than 63 characters")
			}
		}
	}
	if ref != nil {
		v.targetRef("spec.targetRef", ref)
	}
	if len(refs) > maxTargetRefs {
		v.errorf("spec.targetRefs", "at most %d targetRefs", maxTargetRefs)
	}
	for i, r := range refs {
		v.targetRef(fmt.Sprintf("spec.targetRefs[%d]", i), r)
	}
}

func (v *validator) targetRef(path string, r *typev1beta1.PolicyTargetReference) {
	switch {
	case r.GetKind() == "":
		v.errorf(path+".kind", "is required")
	case len(r.GetKind()) > 63 || !targetKind.MatchString(r.GetKind()):
		v.errorf(path+".kind", "%q is not a valid kind", clip(r.GetKind()))
	}
	switch {
	case r.GetName() == "":
		v.errorf(path+".name", "is required")
	case len(r.GetName()) > 253:
		v.errorf(path+".name", "longer than 253 characters")
	}
	if len(r.GetGroup()) > 253 || !targetGroup.MatchString(r.GetGroup()) {
		v.errorf(path+".group", "%q is not a valid group", clip(r.GetGroup()))
	}
	if r.GetNamespace() != "" {
		v.errorf(path+".namespace", "must not be set: cross-namespace references are not supported")
	}
	if r.GetKind() == "" {
		return
	}
	group := r.GetGroup()
	if group == "" {
		group = "core"
	}
	switch group + "/" + r.GetKind() {
	case "core/Service", "networking.istio.io/ServiceEntry",
		"gateway.networking.k8s.io/Gateway", "gateway.networking.k8s.io/GatewayClass":
	default:
		v.errorf(path, "must refer to a Service, a networking.istio.io ServiceEntry, or a gateway.networking.k8s.io Gateway or GatewayClass, not kind %q in group %q", clip(r.GetKind()), clip(group))
	}
}

func (v *validator) authorizationPolicy(ap *securityv1beta1.AuthorizationPolicy) {
	v.targets(ap.GetSelector(), ap.GetTargetRef(), ap.GetTargetRefs())
	action := ap.GetAction()
	rulesPath := "spec.rules"
	if !v.written(rulesPath) {
		rulesPath = "spec.action"
	}
	if len(ap.GetRules()) > maxRules {
		v.errorf("spec.rules", "at most %d rules", maxRules)
	}
	switch action {
	case securityv1beta1.AuthorizationPolicy_DENY, securityv1beta1.AuthorizationPolicy_CUSTOM:
		if len(ap.GetRules()) == 0 {
			v.errorf(rulesPath, "%s action without rules is meaningless as it will never be triggered; add an empty rule {} to trigger it for every request", action)
		}
	case securityv1beta1.AuthorizationPolicy_AUDIT:
		if len(ap.GetRules()) == 0 {
			v.warnf(rulesPath, "AUDIT action without rules never audits a request")
		}
	}
	if action == securityv1beta1.AuthorizationPolicy_CUSTOM {
		if ap.GetProvider().GetName() == "" {
			p := "spec.provider.name"
			if !v.written("spec.provider") {
				p = "spec.provider"
			}
			v.errorf(p, "is required with action CUSTOM")
		}
	} else if ap.GetProvider() != nil {
		v.errorf("spec.provider", "is only valid with action CUSTOM, not %s", action)
	}
	for i, r := range ap.GetRules() {
		v.rule(fmt.Sprintf("spec.rules[%d]", i), r, action)
	}
}

func (v *validator) rule(path string, r *securityv1beta1.Rule, action securityv1beta1.AuthorizationPolicy_Action) {
	if v.written(path+".from") && len(r.GetFrom()) == 0 {
		v.errorf(path+".from", "must not be empty; leave it out to match any source")
	}
	if len(r.GetFrom()) > maxFrom {
		v.errorf(path+".from", "at most %d entries", maxFrom)
	}
	var fromExists, toExists, tcpInFrom, tcpInTo bool
	for i, f := range r.GetFrom() {
		p := fmt.Sprintf("%s.from[%d].source", path, i)
		src := f.GetSource()
		if src == nil {
			v.errorf(p, "is required")
			continue
		}
		fromExists = true
		if len(src.GetPrincipals())+len(src.GetNotPrincipals())+len(src.GetNamespaces())+len(src.GetNotNamespaces())+
			len(src.GetIpBlocks())+len(src.GetNotIpBlocks())+len(src.GetRemoteIpBlocks())+len(src.GetNotRemoteIpBlocks())+
			len(src.GetServiceAccounts())+len(src.GetNotServiceAccounts()) > 0 {
			tcpInFrom = true
		}
		v.source(p, src, action)
	}
	if v.written(path+".to") && len(r.GetTo()) == 0 {
		v.errorf(path+".to", "must not be empty; leave it out to match any operation")
	}
	for i, t := range r.GetTo() {
		p := fmt.Sprintf("%s.to[%d].operation", path, i)
		op := t.GetOperation()
		if op == nil {
			v.errorf(p, "is required")
			continue
		}
		toExists = true
		if len(op.GetPorts())+len(op.GetNotPorts()) > 0 {
			tcpInTo = true
		}
		v.fields(p, op.ProtoReflect(), action, "operation", "any operation")
	}
	for i, c := range r.GetWhen() {
		v.condition(fmt.Sprintf("%s.when[%d]", path, i), c, action)
	}
	if action == securityv1beta1.AuthorizationPolicy_DENY &&
		((fromExists && !toExists && !tcpInFrom) || (toExists && !tcpInTo)) {
		v.warnf(path, "configured AuthorizationPolicy will deny all traffic to TCP ports under its scope due to the use of only HTTP attributes in a DENY rule; it is recommended to explicitly specify the port")
	}
}

func (v *validator) source(path string, src *securityv1beta1.Source, action securityv1beta1.AuthorizationPolicy_Action) {
	if len(src.GetServiceAccounts())+len(src.GetNotServiceAccounts()) > 0 &&
		len(src.GetPrincipals())+len(src.GetNotPrincipals())+len(src.GetNamespaces())+len(src.GetNotNamespaces()) > 0 {
		v.errorf(path, "cannot set serviceAccounts with namespaces or principals")
	}
	v.fields(path, src.ProtoReflect(), action, "source", "any source")
}

// fields checks every value list of a Source or Operation.
func (v *validator) fields(path string, m protoreflect.Message, action securityv1beta1.AuthorizationPolicy_Action, what, matchAll string) {
	set := 0
	// In declaration order, not Range's undefined one: issues on one line
	// must always come out the same.
	fds := m.Descriptor().Fields()
	for i := 0; i < fds.Len(); i++ {
		fd := fds.Get(i)
		if !m.Has(fd) {
			continue
		}
		set++
		name := string(fd.Name())
		p := path + "." + fd.JSONName()
		if action == securityv1beta1.AuthorizationPolicy_CUSTOM && peerOrRequestIdentity(name) {
			v.errorf(p, "is not supported with action CUSTOM, which runs before request authentication")
		}
		if fd.IsList() && fd.Kind() == protoreflect.StringKind {
			v.values(p, fieldKind(name), m.Get(fd).List())
		}
	}
	if set == 0 {
		v.errorf(path, "must not be empty; leave out the %s to match %s", what, matchAll)
	}
}

// peerOrRequestIdentity reports the Source fields CUSTOM policies cannot use.
func peerOrRequestIdentity(field string) bool {
	switch strings.TrimPrefix(field, "not_") {
	case "principals", "request_principals", "namespaces", "service_accounts", "trust_domains":
		return true
	}
	return false
}

// valueKind is the syntax a field's or condition's values must have.
type valueKind int

const (
	patternValue        valueKind = iota // exact, "prefix*", "*suffix" or "*"
	ipValue                              // IP address or CIDR range
	portValue                            // port number
	pathValue                            // pattern or path template
	serviceAccountValue                  // "ns/sa" or "sa", no wildcard
	trustDomainValue                     // pattern without "/"
)

// fieldKind returns the value syntax of a Source or Operation field, by
// proto name.
func fieldKind(field string) valueKind {
	switch strings.TrimPrefix(field, "not_") {
	case "ip_blocks", "remote_ip_blocks":
		return ipValue
	case "ports":
		return portValue
	case "paths":
		return pathValue
	case "service_accounts":
		return serviceAccountValue
	case "trust_domains":
		return trustDomainValue
	}
	return patternValue
}

// values checks the values of one list.
func (v *validator) values(path string, kind valueKind, list protoreflect.List) {
	if kind == serviceAccountValue && list.Len() > maxServiceAccounts {
		v.errorf(path, "at most %d service accounts", maxServiceAccounts)
	}
	for i := 0; i < list.Len(); i++ {
		p := fmt.Sprintf("%s[%d]", path, i)
		if msg := valueProblem(kind, list.Get(i).String()); msg != "" {
			v.errorf(p, "%s", msg)
		}
	}
}

// valueProblem returns what is wrong with one value, or "".
func valueProblem(kind valueKind, s string) string {
	if s == "" {
		return "must not be empty"
	}
	switch kind {
	case ipValue:
		if strings.Contains(s, "/") {
			if _, err := netip.ParsePrefix(s); err != nil {
				return fmt.Sprintf("%q is not a valid CIDR range", clip(s))
			}
		} else if a, err := netip.ParseAddr(s); err != nil || a.Zone() != "" {
			return fmt.Sprintf("%q is not a valid IP address", clip(s))
		}
	case portValue:
		if p, err := strconv.ParseUint(s, 10, 32); err != nil || p < 1 || p > 65535 {
			return fmt.Sprintf("%q is not a port number (1-65535)", clip(s))
		}
	case pathValue:
		if strings.ContainsAny(s, "{}") {
			return templateProblem(s)
		}
		return patternProblem(s)
	case serviceAccountValue:
		switch {
		case strings.Contains(s, "*"):
			return fmt.Sprintf("%q: wildcards are not allowed in service accounts", clip(s))
		case len(s) > maxServiceAccountLen:
			return fmt.Sprintf("longer than %d characters", maxServiceAccountLen)
		}
		parts := strings.Split(s, "/")
		if len(parts) > 2 || parts[0] == "" || parts[len(parts)-1] == "" {
			return fmt.Sprintf("%q: want <namespace>/<serviceaccount> or <serviceaccount>", clip(s))
		}
	case trustDomainValue:
		if strings.Contains(s, "/") {
			return fmt.Sprintf("%q: a trust domain has no \"/\"", clip(s))
		}
		return patternProblem(s)
	default:
		return patternProblem(s)
	}
	return ""
}

// patternProblem checks Istio's string match syntax: exact "abc", prefix
// "abc*", suffix "*abc" or presence "*". Istio reads any other "*" as a
// literal character, which no request carries; idgate refuses it.
func patternProblem(s string) string {
	n := strings.Count(s, "*")
	if n == 0 || s == "*" || (n == 1 && (s[0] == '*' || s[len(s)-1] == '*')) {
		return ""
	}
	return fmt.Sprintf("%q: \"*\" matches only as the whole value, its first character (suffix match) or its last character (prefix match)", clip(s))
}

// templateProblem checks a path template: "{*}" and "{**}" operators, each
// a whole segment, "{**}" the last operator, and no other "*", "{" or "}".
func templateProblem(s string) string {
	sawAny := false
	for _, seg := range strings.Split(s, "/") {
		if !strings.ContainsAny(seg, "{}*") {
			continue
		}
		if sawAny {
			return fmt.Sprintf("%q: {**} must be the last operator of a path template", clip(s))
		}
		switch seg {
		case "{*}":
		case "{**}":
			sawAny = true
		default:
			return fmt.Sprintf("%q: a path template operator is a whole segment, {*} or {**}; no other \"*\", \"{\" or \"}\" is allowed", clip(s))
		}
	}
	return ""
}

// conditionKeys are the keys a `when` may use, for suggestions.
func conditionKeys() []string {
	return []string{
		"request.headers", "source.ip", "remote.ip", "source.namespace", "source.principal",
		"source.serviceAccount", "source.trustDomain", "request.auth.principal",
		"request.auth.audiences", "request.auth.presenter", "request.auth.claims",
		"destination.ip", "destination.port", "connection.sni",
	}
}

// attribute returns the value syntax of a condition key, or what is wrong
// with the key.
func attribute(key string) (valueKind, string) {
	switch key {
	case "source.ip", "remote.ip", "destination.ip":
		return ipValue, ""
	case "destination.port":
		return portValue, ""
	case "source.serviceAccount":
		return serviceAccountValue, ""
	case "source.trustDomain":
		return trustDomainValue, ""
	case "source.namespace", "source.principal", "request.auth.principal",
		"request.auth.audiences", "request.auth.presenter", "connection.sni":
		return patternValue, ""
	case "destination.namespace":
		return 0, "attribute destination.namespace is replaced by metadata.namespace"
	case "destination.name", "destination.user":
		return 0, fmt.Sprintf("deprecated attribute %s: only supported in v1alpha1", key)
	}
	switch {
	case strings.HasPrefix(key, "request.headers"):
		return patternValue, bracketProblem(key, "request.headers", true)
	case strings.HasPrefix(key, "request.auth.claims"):
		return patternValue, bracketProblem(key, "request.auth.claims", false)
	case strings.HasPrefix(key, "experimental.envoy.filters."):
		open := strings.Index(key, "[")
		if strings.HasSuffix(key, "]") && open > 0 && open < len(key)-2 {
			return patternValue, ""
		}
		return 0, fmt.Sprintf("bad key %q: should have format a[b]", clip(key))
	case strings.HasPrefix(key, "destination.labels"):
		return 0, fmt.Sprintf("attribute %s is replaced by the workload selector", key)
	}
	msg := fmt.Sprintf("unknown attribute %q", clip(key))
	name, brackets := key, ""
	if i := strings.IndexByte(key, '['); i >= 0 {
		name, brackets = key[:i], key[i:]
	}
	if s := suggest(name, conditionKeys()); s != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", clip(s+brackets))
	}
	return 0, msg
}

// bracketProblem checks a key of the form prefix[name] (one) or
// prefix[a][b]... (several).
func bracketProblem(key, prefix string, one bool) string {
	rest := key[len(prefix):]
	if rest == "" {
		return fmt.Sprintf("%s needs a name in brackets, e.g. %s[name]", prefix, prefix)
	}
	count := 0
	for rest != "" {
		end := strings.IndexByte(rest, ']')
		if rest[0] != '[' || end < 0 {
			return fmt.Sprintf("bad key %q: want %s[name]", clip(key), prefix)
		}
		name := rest[1:end]
		switch {
		case name == "":
			return fmt.Sprintf("bad key %q: empty name in brackets", clip(key))
		case strings.ContainsAny(name, "["):
			return fmt.Sprintf("bad key %q: unbalanced brackets", clip(key))
		case strings.ContainsAny(name[:1], `"'`) || strings.ContainsAny(name[len(name)-1:], `"'`):
			return fmt.Sprintf("bad key %q: write names without quotes, e.g. %s[%s]", clip(key), prefix, clip(strings.Trim(name, `"'`)))
		}
		rest = rest[end+1:]
		count++
	}
	if one && count > 1 {
		return fmt.Sprintf("bad key %q: %s takes one name in brackets", clip(key), prefix)
	}
	return ""
}

func (v *validator) condition(path string, c *securityv1beta1.Condition, action securityv1beta1.AuthorizationPolicy_Action) {
	key := c.GetKey()
	if key == "" {
		v.errorf(path+".key", "is required")
		return
	}
	if len(c.GetValues()) == 0 && len(c.GetNotValues()) == 0 {
		v.errorf(path, "at least one of values or notValues must be set for key %s", key)
	}
	kind, msg := attribute(key)
	if msg != "" {
		v.errorf(path+".key", "%s", msg)
		return
	}
	if action == securityv1beta1.AuthorizationPolicy_CUSTOM {
		switch {
		case key == "source.namespace", key == "source.serviceAccount", key == "source.principal",
			key == "source.trustDomain", strings.HasPrefix(key, "request.auth."):
			v.errorf(path+".key", "%s is not supported with action CUSTOM, which runs before request authentication", key)
		}
	}
	m := c.ProtoReflect()
	for _, name := range []protoreflect.Name{"values", "not_values"} {
		fd := m.Descriptor().Fields().ByName(name)
		v.values(path+"."+fd.JSONName(), kind, m.Get(fd).List())
	}
}

func (v *validator) requestAuthentication(ra *securityv1beta1.RequestAuthentication) {
	v.targets(ra.GetSelector(), ra.GetTargetRef(), ra.GetTargetRefs())
	if len(ra.GetJwtRules()) > maxJWTRules {
		v.errorf("spec.jwtRules", "at most %d rules", maxJWTRules)
	}
	issuers := make(map[string]int)
	for i, r := range ra.GetJwtRules() {
		p := fmt.Sprintf("spec.jwtRules[%d]", i)
		v.jwtRule(p, r)
		if iss := r.GetIssuer(); iss != "" {
			if first, ok := issuers[iss]; ok {
				v.warnf(p+".issuer", "issuer also configured in jwtRules[%d]; a token is accepted if it satisfies either rule", first)
			} else {
				issuers[iss] = i
			}
		}
	}
}

func (v *validator) jwtRule(path string, r *securityv1beta1.JWTRule) {
	switch {
	case v.written(path+".issuer") && r.GetIssuer() == "":
		v.errorf(path+".issuer", "must not be empty")
	case r.GetIssuer() == "" && r.GetJwksUri() == "":
		v.errorf(path, "issuer or jwksUri must be set")
	}
	for i, a := range r.GetAudiences() {
		if a == "" {
			v.errorf(fmt.Sprintf("%s.audiences[%d]", path, i), "must not be empty")
		}
	}
	if v.written(path + ".jwksUri") {
		if msg := jwksURIProblem(r.GetJwksUri()); msg != "" {
			v.errorf(path+".jwksUri", "%s", msg)
		}
	}
	if r.GetJwks() != "" {
		if r.GetJwksUri() != "" {
			v.errorf(path+".jwks", "only one of jwks or jwksUri can be set")
		}
		_, skipped, err := token.ParseJWKSReport([]byte(r.GetJwks()))
		if err != nil {
			v.errorf(path+".jwks", "invalid JWK Set: %v", err)
		} else {
			if member := privateKeyMember(r.GetJwks()); member != "" {
				v.warnf(path+".jwks", "the JWK Set contains private key material (%q); publish public keys only", member)
			}
			for _, s := range skipped {
				v.warnf(path+".jwks", "%s (left out)", s)
			}
		}
	}
	for i, h := range r.GetFromHeaders() {
		p := fmt.Sprintf("%s.fromHeaders[%d].name", path, i)
		switch name := h.GetName(); {
		case name == "":
			v.errorf(p, "is required")
		case !httpguts.ValidHeaderFieldName(name):
			v.errorf(p, "%q is not a valid HTTP header name", clip(name))
		}
	}
	for i, s := range r.GetFromParams() {
		if s == "" {
			v.errorf(fmt.Sprintf("%s.fromParams[%d]", path, i), "must not be empty")
		}
	}
	for i, s := range r.GetFromCookies() {
		if s == "" {
			v.errorf(fmt.Sprintf("%s.fromCookies[%d]", path, i), "must not be empty")
		}
	}
	if h := r.GetOutputPayloadToHeader(); h != "" && !httpguts.ValidHeaderFieldName(h) {
		v.errorf(path+".outputPayloadToHeader", "%q is not a valid HTTP header name", clip(h))
	}
	headers := make(map[string]int)
	for i, c := range r.GetOutputClaimToHeaders() {
		p := fmt.Sprintf("%s.outputClaimToHeaders[%d]", path, i)
		switch h := c.GetHeader(); {
		case h == "":
			v.errorf(p+".header", "is required")
		case !claimHeader.MatchString(h):
			v.errorf(p+".header", "%q: header names here may only contain letters, digits, \"-\" and \"_\"", clip(h))
		default:
			if first, ok := headers[strings.ToLower(h)]; ok {
				v.errorf(p+".header", "header %q is already set by outputClaimToHeaders[%d]", clip(h), first)
			} else {
				headers[strings.ToLower(h)] = i
			}
		}
		if c.GetClaim() == "" {
			v.errorf(p+".claim", "is required")
		}
	}
	if t := r.GetTimeout(); t != nil {
		d := t.AsDuration()
		switch {
		case d < time.Millisecond:
			v.errorf(path+".timeout", "must be at least 1ms")
		case d%time.Millisecond != 0:
			v.errorf(path+".timeout", "only durations to ms precision are supported")
		}
	}
	claims := r.GetSpaceDelimitedClaims()
	if len(claims) > maxSpaceDelimitedClaims {
		v.errorf(path+".spaceDelimitedClaims", "at most %d claims", maxSpaceDelimitedClaims)
	}
	for i, c := range claims {
		if c == "" {
			v.errorf(fmt.Sprintf("%s.spaceDelimitedClaims[%d]", path, i), "must not be empty")
		}
	}
}

// jwksURIProblem checks a jwksUri the way Istio does: an http or https URL
// with a host and, if any, a numeric port.
func jwksURIProblem(s string) string {
	if s == "" {
		return "must not be empty"
	}
	if len(s) > maxJWKSURILen {
		return fmt.Sprintf("longer than %d characters", maxJWKSURILen)
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Sprintf("%q is not a valid URL", clip(s))
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Sprintf("%q: the URL must have scheme http:// or https://", clip(s))
	case u.Hostname() == "":
		return fmt.Sprintf("%q: the URL has no host", clip(s))
	}
	return ""
}

// privateKeyMember returns a JWK member that holds private or secret key
// material ("d" of RSA, EC and OKP keys, "k" of symmetric keys), or "".
func privateKeyMember(jwks string) string {
	var set struct {
		Keys []map[string]json.RawMessage `json:"keys"`
	}
	if json.Unmarshal([]byte(jwks), &set) != nil {
		return ""
	}
	for _, k := range set.Keys {
		for _, member := range []string{"d", "k"} {
			if _, ok := k[member]; ok {
				return member
			}
		}
	}
	return ""
}
