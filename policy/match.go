package policy

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/idgate/idgate/request"
)

// strKind is how an Istio string pattern matches (authorization_policy.proto,
// Rule: exact "abc", prefix "abc*", suffix "*abc", presence "*").
type strKind uint8

const (
	strExact strKind = iota
	strPrefix
	strSuffix
	strPresent // "*": any non-empty value
)

// strMatcher is one compiled string pattern.
type strMatcher struct {
	kind  strKind
	value string // the pattern without its '*'; lower-cased when fold
	fold  bool   // ASCII case-insensitive (hosts)
}

// newStrMatcher classifies a pattern the way Istio does
// (pilot/pkg/security/authz/matcher/string.go StringMatcherWithPrefix):
// "*" is presence, a leading '*' makes a suffix match (checked first, so
// "*a*" is the suffix "a*"), a trailing '*' a prefix match, anything else
// is exact; a '*' elsewhere is a literal character.
func newStrMatcher(pattern string, fold bool) strMatcher {
	m := strMatcher{fold: fold}
	switch {
	case pattern == "*":
		m.kind = strPresent
	case strings.HasPrefix(pattern, "*"):
		m.kind, m.value = strSuffix, pattern[1:]
	case strings.HasSuffix(pattern, "*"):
		m.kind, m.value = strPrefix, pattern[:len(pattern)-1]
	default:
		m.kind, m.value = strExact, pattern
	}
	if fold {
		m.value = asciiLower(m.value)
	}
	return m
}

// match reports whether s, a present value, matches. An empty s matches only
// an exact empty pattern.
func (m *strMatcher) match(s string) bool {
	switch m.kind {
	case strPresent:
		return s != ""
	case strExact:
		return len(s) == len(m.value) && m.equal(s)
	case strPrefix:
		return len(s) >= len(m.value) && m.equal(s[:len(m.value)])
	default: // strSuffix
		return len(s) >= len(m.value) && m.equal(s[len(s)-len(m.value):])
	}
}

// equal compares s with the pattern value; len(s) == len(m.value).
func (m *strMatcher) equal(s string) bool {
	if !m.fold {
		return s == m.value
	}
	for i := 0; i < len(s); i++ {
		if lowerASCII(s[i]) != m.value[i] {
			return false
		}
	}
	return true
}

// matchJoined matches the values of a repeated header as Envoy sees them:
// joined by sep into one string, which is never built. Presence is the
// caller's business (a present header matches "*").
func (m *strMatcher) matchJoined(vals []string, sep byte) bool {
	if len(vals) == 1 {
		return m.match(vals[0])
	}
	n := len(vals) - 1
	for _, v := range vals {
		n += len(v)
	}
	switch m.kind {
	case strPresent:
		return n > 0
	case strExact:
		return n == len(m.value) && joinedAt(vals, sep, 0, m.value)
	case strPrefix:
		return n >= len(m.value) && joinedAt(vals, sep, 0, m.value)
	default:
		return n >= len(m.value) && joinedAt(vals, sep, n-len(m.value), m.value)
	}
}

// joinedAt reports whether the string vals joined by sep holds want at
// byte offset off. The caller checks that it fits.
func joinedAt(vals []string, sep byte, off int, want string) bool {
	pos, i := 0, 0 // pos: offset of vals[k] in the joined string; i: bytes of want checked
	for k, v := range vals {
		if k > 0 {
			if pos >= off && i < len(want) {
				if want[i] != sep {
					return false
				}
				i++
			}
			pos++
		}
		if start := max(off-pos, 0); start < len(v) && i < len(want) {
			n := min(len(v)-start, len(want)-i)
			if v[start:start+n] != want[i:i+n] {
				return false
			}
			i += n
		}
		pos += len(v)
		if i == len(want) {
			return true
		}
	}
	return i == len(want)
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

func asciiLower(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				b[j] = lowerASCII(b[j])
			}
			return string(b)
		}
	}
	return s
}

// principalMatcher matches requestPrincipals / request.auth.principal the
// way Istio ≥ 1.22 does (generator.go requestPrincipalGenerator): the
// pattern is split at its last '/' into an issuer part and a subject part,
// matched against the token's "iss" and "sub" separately
// (istio-semantics.md §4.9).
type principalMatcher struct {
	iss, sub strMatcher
}

func newPrincipalMatcher(p string) principalMatcher {
	present := strMatcher{kind: strPresent}
	exact := func(s string) strMatcher { return strMatcher{kind: strExact, value: s} }
	i := strings.LastIndexByte(p, '/')
	found := i >= 0
	iss, sub := p, ""
	if found {
		iss, sub = p[:i], p[i+1:]
	}
	switch {
	case p == "*":
		return principalMatcher{iss: present, sub: present}
	case strings.HasPrefix(p, "*"):
		if !found {
			return principalMatcher{iss: present, sub: strMatcher{kind: strSuffix, value: p[1:]}}
		}
		m := principalMatcher{iss: strMatcher{kind: strSuffix, value: iss[1:]}, sub: exact(sub)}
		if iss == "*" {
			m.iss = present
		}
		return m
	case strings.HasSuffix(p, "*"):
		if !found {
			return principalMatcher{iss: strMatcher{kind: strPrefix, value: p[:len(p)-1]}, sub: present}
		}
		m := principalMatcher{iss: exact(iss), sub: strMatcher{kind: strPrefix, value: sub[:len(sub)-1]}}
		if sub == "*" {
			m.sub = present
		}
		return m
	default:
		return principalMatcher{iss: exact(iss), sub: exact(sub)}
	}
}

// match reports whether a token with this "iss" and "sub" matches; a
// missing (empty) claim matches nothing, as Envoy's metadata matcher finds
// no value.
func (m *principalMatcher) match(iss, sub string) bool {
	return iss != "" && sub != "" && m.iss.match(iss) && m.sub.match(sub)
}

// accountMatcher matches serviceAccounts / source.serviceAccount: Istio's
// regex "spiffe://.+/ns/NS/(.+/|)sa/SA(/.+)?" (generator.go
// serviceAccountRegex) against the peer's SPIFFE id, with NS and SA
// compared literally.
type accountMatcher struct {
	ns string // "/ns/<namespace>/"
	sa string // "sa/<name>"
}

func newAccountMatcher(value, policyNamespace string) accountMatcher {
	ns, sa, ok := strings.Cut(value, "/")
	if !ok {
		ns, sa = policyNamespace, value
	}
	return accountMatcher{ns: "/ns/" + ns + "/", sa: "sa/" + sa}
}

// match reports whether a peer principal ("td/ns/x/sa/y", without
// "spiffe://") names the service account.
func (m *accountMatcher) match(principal string) bool {
	if strings.IndexByte(principal, '\n') >= 0 { // '.' in the regex never matches a newline
		return false
	}
	for from := 1; from < len(principal); {
		i := strings.Index(principal[from:], m.ns)
		if i < 0 {
			return false
		}
		i += from
		if m.matchRest(principal[i+len(m.ns):]) {
			return true
		}
		from = i + 1
	}
	return false
}

// matchRest matches "(.+/|)sa/SA(/.+)?" in full.
func (m *accountMatcher) matchRest(rest string) bool {
	for from := 0; from < len(rest); {
		j := strings.Index(rest[from:], m.sa)
		if j < 0 {
			return false
		}
		j += from
		after := rest[j+len(m.sa):]
		if (j == 0 || (j >= 2 && rest[j-1] == '/')) && (after == "" || (after[0] == '/' && len(after) >= 2)) {
			return true
		}
		from = j + 1
	}
	return false
}

// glob matches namespaces / source.namespace: Istio turns every '*' of the
// pattern into ".*" (generator.go srcNamespaceGenerator), so '*' matches
// any run of characters, anywhere in the pattern.
type glob struct {
	parts []string // the pattern split at '*'
}

func newGlob(p string) glob { return glob{parts: strings.Split(p, "*")} }

func (g *glob) match(s string) bool {
	parts := g.parts
	if len(parts) == 1 {
		return s == parts[0]
	}
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	last := parts[len(parts)-1]
	for _, p := range parts[1 : len(parts)-1] {
		i := strings.Index(s, p)
		if i < 0 {
			return false
		}
		s = s[i+len(p):]
	}
	return strings.HasSuffix(s, last)
}

// trustDomain is the trust domain of a peer principal: what precedes its
// first '/'.
func trustDomain(principal string) string {
	if i := strings.IndexByte(principal, '/'); i >= 0 {
		return principal[:i]
	}
	return principal
}

// parsePrefix reads an ipBlocks entry: a CIDR, or one address meaning
// /32 or /128 (Istio's AddrStrToCidrRange). IPv4-mapped IPv6 prefixes are
// stored as IPv4, the form request addresses are compared in.
func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("bad CIDR range %q: %v", s, err)
		}
		if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("bad IP address %q", s)
	}
	a = a.Unmap().WithZone("")
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// requestAddr is a request address as prefixes are compared with it.
func requestAddr(a netip.Addr) netip.Addr { return a.Unmap().WithZone("") }

// Path templates: Operation.paths holding "{*}" or "{**}" are Envoy URI
// templates (extensions/path/match/uri_template). Istio turns "{*}" into
// "*" and "{**}" into "**"; Envoy compiles the template into the regex
// "/" + segments joined by "/" + suffix, where "*" is one or more pchars
// and "**" zero or more pchars or '/', and matches it against the whole
// path.

// templateChar reports whether c is a pchar Envoy's template globs match:
// unreserved, '%', the sub-delimiters except '*', ':' and '@'.
func templateChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("-._~%!$&'()+,;:@=", c) >= 0
}

type tmplOp uint8

const (
	tmplLit tmplOp = iota // literal text, including the separating slashes
	tmplOne               // {*}: one or more template chars, no '/'
	tmplAny               // {**}: zero or more template chars or '/'
)

type tmplToken struct {
	op  tmplOp
	lit string // tmplLit: the text; tmplAny: all the literal text after it
}

// pathTemplate is a compiled path template.
type pathTemplate struct {
	tokens []tmplToken
}

// parseTemplate compiles a path template, rejecting what Istio's
// validation (pkg/config/security CheckValidPathTemplate) rejects: an
// operator that is not a whole segment, {**} before another operator, an
// empty segment other than a trailing '/', and literal segments with
// characters outside Envoy's template literals.
func parseTemplate(p string) (pathTemplate, error) {
	if !strings.HasPrefix(p, "/") {
		return pathTemplate{}, fmt.Errorf("path template %q must start with '/'", p)
	}
	for i := 0; i < len(p); i++ {
		if p[i] <= ' ' || p[i] >= 0x7f {
			return pathTemplate{}, fmt.Errorf("path template %q holds a space, control or non-ASCII character", p)
		}
	}
	segs := strings.Split(p[1:], "/")
	var toks []tmplToken
	lit := func(s string) {
		if n := len(toks); n > 0 && toks[n-1].op == tmplLit {
			toks[n-1].lit += s
			return
		}
		toks = append(toks, tmplToken{op: tmplLit, lit: s})
	}
	lit("/")
	sawAny := false
	for k, seg := range segs {
		last := k == len(segs)-1
		if k > 0 {
			lit("/")
		}
		switch seg {
		case "{**}", "{*}":
			if sawAny {
				return pathTemplate{}, fmt.Errorf("path template %q: {**} must be the last operator", p)
			}
			op := tmplOne
			if seg == "{**}" {
				op, sawAny = tmplAny, true
			}
			toks = append(toks, tmplToken{op: op})
			continue
		}
		switch {
		case seg == "" && last && k > 0:
			// A trailing '/' (already written).
		case seg == "":
			return pathTemplate{}, fmt.Errorf("path template %q has an empty segment", p)
		case !validTemplateLiteral(seg):
			return pathTemplate{}, fmt.Errorf("path template %q: segment %q is neither {*}, {**} nor a literal of the characters Envoy accepts (letters, digits, -._~%%!$&'()+,;:@=)", p, seg)
		default:
			lit(seg)
		}
	}
	// Give each {**} the literal text that must end the path after it.
	for i := range toks {
		if toks[i].op == tmplAny {
			var tail strings.Builder
			for _, t := range toks[i+1:] {
				tail.WriteString(t.lit)
			}
			toks[i].lit = tail.String()
			toks = toks[:i+1]
			break
		}
	}
	return pathTemplate{tokens: toks}, nil
}

func validTemplateLiteral(s string) bool {
	for i := 0; i < len(s); i++ {
		if !templateChar(s[i]) {
			return false
		}
	}
	return true
}

// spanTemplate returns the length of the longest prefix of s made of
// template characters, with '/' when slash.
func spanTemplate(s string, slash bool) int {
	for i := 0; i < len(s); i++ {
		if !templateChar(s[i]) && !(slash && s[i] == '/') {
			return i
		}
	}
	return len(s)
}

// match reports whether the template matches the whole path. Each {*} is
// followed by a literal starting with '/' or by nothing, and {**} by
// literal text only, so no backtracking is needed.
func (t *pathTemplate) match(path string) bool {
	pos := 0
	for _, tok := range t.tokens {
		rest := path[pos:]
		switch tok.op {
		case tmplLit:
			if !strings.HasPrefix(rest, tok.lit) {
				return false
			}
			pos += len(tok.lit)
		case tmplAny:
			n := len(rest) - len(tok.lit)
			return n >= 0 && strings.HasSuffix(rest, tok.lit) && spanTemplate(rest[:n], true) == n
		case tmplOne:
			n := spanTemplate(rest, false)
			if n == 0 {
				return false
			}
			pos += n
		}
	}
	return pos == len(path)
}

// isTemplate reports whether a paths entry is a path template.
func isTemplate(p string) bool {
	return strings.Contains(p, "{*}") || strings.Contains(p, "{**}")
}

// pathMatcher is one paths entry: a string pattern or a template.
type pathMatcher struct {
	str  strMatcher
	tmpl *pathTemplate
}

func (m *pathMatcher) match(path string) bool {
	if m.tmpl != nil {
		return m.tmpl.match(path)
	}
	return m.str.match(path)
}

// claimValue finds a claim by its path (request.auth.claims[a][b] is
// ["a", "b"]) in the verified claims.
func claimValue(claims request.Claims, path []string) (any, bool) {
	if len(path) == 0 {
		return nil, false
	}
	v, ok := claims.Get(path[0])
	if !ok {
		return nil, false
	}
	for _, k := range path[1:] {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = m[k]; !ok {
			return nil, false
		}
	}
	return v, true
}
