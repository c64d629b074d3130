package authn

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"slices"
	"strings"
	"time"

	securityv1beta1 "istio.io/api/security/v1beta1"

	"github.com/idgate/idgate/policy"
	"github.com/idgate/idgate/request"
	"github.com/idgate/idgate/token"
)

// maxTokens bounds the different tokens of one request that are verified,
// and maxFound the tokens (the same one repeated included) looked at:
// beyond them the request is rejected with MultipleTokens unverified, so
// that a request cannot make idgate verify signatures or compare tokens
// without end.
const (
	maxTokens = 4
	maxFound  = 32
)

// Options configure Compile.
type Options struct {
	// Keys returns the keys that verify the tokens of a jwtRule. The
	// server builds them from the rule's jwks, jwksUri or issuer
	// discovery; `idgate test` gives every rule its test key. Required
	// when there are rules.
	Keys func(rule *securityv1beta1.JWTRule) (token.KeySource, error)
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// Skew is the clock skew allowed for "exp" and "nbf"; zero means
	// token.DefaultSkew (60 s, as in Istio), negative allows none.
	Skew time.Duration
	// AllowedTenants restricts the tenants of rules whose issuer is an
	// Entra template with token.TenantPlaceholder (an idgate extension);
	// empty allows any tenant. Rules with exact issuers are not affected.
	AllowedTenants []string
	// Cache, if set, remembers what Authenticate made of the tokens it
	// accepted (see Cache), so that a token sent again is not verified
	// again.
	Cache *Cache
	// Claims, if not nil, are the only claims (top-level names) the
	// identities Authenticate returns hold: those the authorization
	// policies and the audit read. The claims output headers read are
	// added. It keeps cached identities small. Explain always returns
	// every claim.
	Claims []string
}

// An Authenticator applies the jwtRules of a set of RequestAuthentication
// policies to requests, as the Envoy configuration Istio generates from
// them would. It is safe for concurrent use.
type Authenticator struct {
	rules []*rule
	// locations are the places any rule reads, in extraction order.
	locations []Location
	// outputHeaders are the headers any rule may set, canonical, sorted.
	outputHeaders []string
	cache         *Cache
	// keep are the claims Authenticate's identities hold; nil for all.
	keep []string
}

// rule is one compiled jwtRule: Envoy's JwtProvider.
type rule struct {
	owner    *Authenticator
	ref      Rule
	verifier *token.Verifier
	// reads[i] says whether the rule reads Authenticator.locations[i].
	reads []bool
	// remove[i] are the headers removed upstream when the rule accepts a
	// request whose one token is at Authenticator.locations[i]: the
	// output headers, and the token's header unless the rule forwards it.
	remove        [][]string
	forward       bool
	payloadHeader string
	// audiences are the rule's audiences, each as a one-element list
	// identities share.
	audiences    [][]string
	claimHeaders []claimHeader
	split        []string
}

type claimHeader struct {
	header, claim string
}

// Compile merges the jwtRules of every RequestAuthentication in docs into
// one Authenticator, the way Istio merges all policies that apply to a
// workload: rules are concatenated in document order and sorted by issuer
// (istio-semantics.md §2, §3.2). Documents of other kinds are ignored. An
// Authenticator without rules lets every request through anonymously.
//
// The documents must be valid, as policy.Load and policy.Parse return
// them (header names, non-empty parameter and cookie names, ...); Compile
// fails only when a rule's keys or verifier cannot be set up.
func Compile(docs []*policy.Document, opts Options) (*Authenticator, error) {
	type entry struct {
		doc   *policy.Document
		index int
		spec  *securityv1beta1.JWTRule
	}
	var entries []entry
	for _, d := range docs {
		if d == nil || d.RequestAuthentication == nil {
			continue
		}
		for i, r := range d.RequestAuthentication.GetJwtRules() {
			entries = append(entries, entry{d, i, r})
		}
	}
	slices.SortStableFunc(entries, func(a, b entry) int {
		return strings.Compare(a.spec.GetIssuer(), b.spec.GetIssuer())
	})
	if len(entries) > 0 && opts.Keys == nil {
		return nil, errors.New("authn: Options.Keys is required")
	}

	a := &Authenticator{cache: opts.Cache}
	ruleLocs := make([][]Location, len(entries))
	outputs := map[string]bool{}
	for i, e := range entries {
		r, locs, err := compileRule(e.spec, opts)
		if err != nil {
			return nil, fmt.Errorf("authn: %s: jwtRules[%d]: %w", describe(e.doc), e.index, err)
		}
		r.ref = Rule{Policy: e.doc.ID(), Index: e.index, Issuer: e.spec.GetIssuer()}
		r.owner = a
		a.rules = append(a.rules, r)
		ruleLocs[i] = locs
		for _, l := range locs {
			if !slices.Contains(a.locations, l) {
				a.locations = append(a.locations, l)
			}
		}
		if r.payloadHeader != "" {
			outputs[r.payloadHeader] = true
		}
		for _, c := range r.claimHeaders {
			outputs[c.header] = true
		}
	}
	slices.SortFunc(a.locations, compareLocations)
	for i, r := range a.rules {
		r.reads = make([]bool, len(a.locations))
		for _, l := range ruleLocs[i] {
			r.reads[slices.Index(a.locations, l)] = true
		}
	}
	for h := range outputs {
		a.outputHeaders = append(a.outputHeaders, h)
	}
	slices.Sort(a.outputHeaders)
	for _, r := range a.rules {
		r.remove = make([][]string, len(a.locations))
		for li, l := range a.locations {
			rm := slices.Clone(a.outputHeaders)
			if r.reads[li] && !r.forward && l.Kind == InHeader && !slices.Contains(rm, l.Name) {
				rm = append(rm, l.Name)
			}
			r.remove[li] = slices.Clip(rm)
		}
	}
	if opts.Claims != nil {
		a.keep = slices.Clone(opts.Claims)
		for _, r := range a.rules {
			for _, c := range r.claimHeaders {
				name, _, _ := strings.Cut(c.claim, ".")
				a.keep = append(a.keep, name)
			}
		}
		slices.Sort(a.keep)
		a.keep = slices.Clip(slices.Compact(a.keep))
	}
	return a, nil
}

// describe names a document in errors: "file.yaml:12: RequestAuthentication
// ns/name".
func describe(d *policy.Document) string {
	s := "RequestAuthentication " + d.ID()
	if d.File != "" {
		s = fmt.Sprintf("%s:%d: %s", d.File, d.Line, s)
	}
	return s
}

// compareLocations orders locations as Envoy's extractor visits them:
// headers (by lower-case name, then prefix), query parameters, cookies,
// each by name.
func compareLocations(a, b Location) int {
	if c := cmp.Compare(a.Kind, b.Kind); c != 0 {
		return c
	}
	if a.Kind == InHeader {
		return strings.Compare(strings.ToLower(a.Name)+a.Prefix, strings.ToLower(b.Name)+b.Prefix)
	}
	return strings.Compare(a.Name, b.Name)
}

func compileRule(spec *securityv1beta1.JWTRule, opts Options) (*rule, []Location, error) {
	var locs []Location
	for _, h := range spec.GetFromHeaders() {
		locs = append(locs, Location{Kind: InHeader, Name: textproto.CanonicalMIMEHeaderKey(h.GetName()), Prefix: h.GetPrefix()})
	}
	for _, p := range spec.GetFromParams() {
		locs = append(locs, Location{Kind: InParam, Name: p})
	}
	for _, c := range spec.GetFromCookies() {
		locs = append(locs, Location{Kind: InCookie, Name: c})
	}
	if len(locs) == 0 {
		locs = []Location{defaultHeader, defaultParam}
	}

	r := &rule{
		forward: spec.GetForwardOriginalToken(),
		split:   slices.Concat(alwaysSplit, spec.GetSpaceDelimitedClaims()),
	}
	for _, aud := range spec.GetAudiences() {
		r.audiences = append(r.audiences, []string{intern(aud)})
	}
	if h := spec.GetOutputPayloadToHeader(); h != "" {
		r.payloadHeader = textproto.CanonicalMIMEHeaderKey(h)
	}
	for _, c := range spec.GetOutputClaimToHeaders() {
		r.claimHeaders = append(r.claimHeaders, claimHeader{textproto.CanonicalMIMEHeaderKey(c.GetHeader()), c.GetClaim()})
	}

	keys, err := opts.Keys(spec)
	if err != nil {
		return nil, nil, fmt.Errorf("keys: %w", err)
	}
	cfg := token.Config{
		Audiences: spec.GetAudiences(),
		Keys:      keys,
		Skew:      opts.Skew,
		Now:       opts.Now,
	}
	if iss := spec.GetIssuer(); iss != "" {
		cfg.Issuers = []string{iss}
		if strings.Contains(iss, token.TenantPlaceholder) {
			cfg.AllowedTenants = opts.AllowedTenants
		}
	}
	if r.verifier, err = token.NewVerifier(cfg); err != nil {
		return nil, nil, err
	}
	return r, locs, nil
}

// OutputHeaders returns the names (canonical form) of the headers the rules
// may set: outputPayloadToHeader and outputClaimToHeaders. Authenticate
// always removes client-sent copies of them (Result.Changes); front ends
// that build upstream requests their own way must do the same.
func (a *Authenticator) OutputHeaders() []string {
	return slices.Clone(a.outputHeaders)
}

// Rules returns the compiled rules in the order they are applied.
func (a *Authenticator) Rules() []Rule {
	out := make([]Rule, len(a.rules))
	for i, r := range a.rules {
		out[i] = r.ref
	}
	return out
}

// Authenticate finds the tokens of a request, verifies them and returns the
// outcome, as Istio's RequestAuthentication (Envoy's jwt_authn filter)
// would decide it:
//
//   - a CORS preflight request is let through without looking at tokens;
//   - a request without a token at any location a rule reads continues
//     anonymously (200, nil Identity);
//   - each rule checks every token at its own locations: all of them must
//     have its issuer and verify; the request is authenticated when one
//     rule succeeds (istio-semantics.md §3.2);
//   - otherwise the request is rejected: 403 when the reported reason is
//     an audience no rule accepts, 401 for every other reason (an invalid
//     token, an issuer no rule reading that location names, ...).
//
// idgate adds one rule of its own: a request that carries different tokens
// is rejected with MultipleTokens (401), since its identity would be
// ambiguous.
//
// With a Cache (Options.Cache), a token accepted before may be answered
// from it: the outcome is the same, the Identity is shared with other
// requests, and Result.Tokens is nil. The Result's Identity, Rule and
// Changes may be shared: treat them as read-only.
func (a *Authenticator) Authenticate(ctx context.Context, req *request.Attributes) Result {
	return a.authenticate(ctx, req, false)
}

// Explain authenticates like Authenticate, without the cache: Result.Tokens
// records every token found and every rule it was checked against, and the
// Identity holds every claim of the token.
func (a *Authenticator) Explain(ctx context.Context, req *request.Attributes) Result {
	return a.authenticate(ctx, req, true)
}

func (a *Authenticator) authenticate(ctx context.Context, req *request.Attributes, explain bool) Result {
	spoofed := hasSpoofedCopies(req.Header, a.outputHeaders)
	res := Result{Status: http.StatusOK, Changes: Changes{RemoveHeaders: a.removals(a.outputHeaders, req.Header, spoofed)}}
	if len(a.rules) == 0 {
		return res
	}
	if isPreflight(req) {
		res.Preflight = true
		return res
	}
	var buf [2]extracted
	found := extract(buf[:0], a.locations, req, maxFound)
	if len(found) == 0 {
		return res
	}
	cache := a.cache
	if explain {
		cache = nil
	}
	if cache != nil && len(found) == 1 {
		if e := cache.lookup(ctx, a, found[0].raw, found[0].loc); e != nil {
			r := e.rule
			res.Rule = &r.ref
			res.Identity = &e.id
			res.Changes = a.changes(req, r, found, e.set, spoofed)
			return res
		}
	}

	s := newSession(a, slices.Clone(found))
	res.Tokens = s.tokens
	if s.distinct > maxTokens || len(found) > maxFound {
		return s.reject(res, status{kind: failed, err: s.multipleTokensError()})
	}

	st := s.decide(ctx)
	if st.kind == missing {
		return res
	}
	if st.kind != ok {
		return s.reject(res, st)
	}
	if s.distinct > 1 {
		return s.reject(res, status{kind: failed, err: s.multipleTokensError()})
	}

	r := a.rules[st.rule]
	v := s.per[s.per[st.token].same].verified
	set := r.outputs(v)
	res.Rule = &r.ref
	res.Changes = a.changes(req, r, s.found, set, spoofed)
	if cache != nil && s.cacheable(st.rule) {
		e := cache.newCacheEntry(a, v, s.found[0].loc, st.rule, set)
		cache.add(v.Raw, e)
		res.Identity = &e.id
		return res
	}
	keep := a.keep
	if explain {
		keep = nil
	}
	res.Identity = newIdentity(v, r, keep)
	return res
}

// removals returns remove with the other spellings of the output headers
// that the client sent in h (withSpoofedCopies), which spoofed says there
// are. The result is remove itself when there are none: treat it as
// read-only.
func (a *Authenticator) removals(remove []string, h http.Header, spoofed bool) []string {
	if !spoofed {
		return remove
	}
	return withSpoofedCopies(slices.Clone(remove), h, a.outputHeaders)
}

type statusKind uint8

const (
	unchecked     statusKind = iota
	missing                  // no token at the rule's locations
	ok                       // every token verified
	unknownIssuer            // a token's iss is not the rule's
	failed                   // a token failed verification
)

// status is the outcome of one rule (Envoy's jwt_verify_lib Status).
type status struct {
	kind  statusKind
	err   *token.Error
	rule  int // the rule
	token int // index in session.found of the token it is about
}

// A session holds the work of authenticating one request.
type session struct {
	a     *Authenticator
	found []extracted
	// tokens are the explanation records, one per found token.
	tokens []Found
	// per holds what is known of each found token.
	per      []tokenState
	distinct int // how many different token strings there are
	// checked[rule*len(found)+i] is rule's outcome for the string of found
	// token i, kept at the index of the first token with that string.
	checked []status
}

type tokenState struct {
	// same is the index of the first found token with this string.
	same     int
	parsed   *token.Parsed
	parseErr *token.Error
	// verified is the token as a rule verified it; the claims of a token
	// do not depend on which rule verified it.
	verified *token.Token
}

func newSession(a *Authenticator, found []extracted) *session {
	s := &session{
		a:       a,
		found:   found,
		tokens:  make([]Found, len(found)),
		per:     make([]tokenState, len(found)),
		checked: make([]status, len(a.rules)*len(found)),
	}
	for i, f := range found {
		s.tokens[i].Location = a.locations[f.loc]
		s.per[i].same = i
		for j := range i {
			if found[j].raw == f.raw {
				s.per[i].same = s.per[j].same
				break
			}
		}
		if s.per[i].same == i {
			s.distinct++
		}
	}
	return s
}

// decide composes the outcomes of the rules exactly as the requirement
// Istio generates does (istio-semantics.md §3.2; Envoy verifier.cc):
// for one rule, requires_any{P1, allow_missing}; for several,
// requires_any{P1, …, Pn, requires_all{any{P1, allow_missing}, …}}.
// The first rule that succeeds decides. If none does, the request is
// anonymous when no rule found a token, and otherwise fails with the
// aggregated status, which prefers a real failure over a missing token or
// an unknown issuer.
func (s *session) decide(ctx context.Context) status {
	var buf [8]status
	statuses := buf[:0]
	allMissing := true
	for i := range s.a.rules {
		st := s.evalRule(ctx, i)
		switch st.kind {
		case ok:
			return st
		case missing:
		default:
			allMissing = false
		}
		statuses = append(statuses, st)
	}
	if allMissing {
		return status{kind: missing}
	}
	if len(statuses) > 1 {
		// requires_all fails with the first rule that failed.
		for _, st := range statuses {
			if st.kind != missing {
				statuses = append(statuses, st)
				break
			}
		}
	}
	final := status{kind: missing}
	for _, st := range statuses {
		if st.kind == failed || final.kind == missing {
			final = st
		}
	}
	return final
}

// evalRule checks every token at the rule's locations, last found first
// as Envoy does, and stops at the first one that fails. On success the
// status names the first token found, whose payload Envoy writes last.
func (s *session) evalRule(ctx context.Context, ri int) status {
	r := s.a.rules[ri]
	first := -1
	for i := len(s.found) - 1; i >= 0; i-- {
		if !r.reads[s.found[i].loc] {
			continue
		}
		if st := s.check(ctx, ri, i); st.kind != ok {
			return st
		}
		first = i
	}
	if first < 0 {
		return status{kind: missing, rule: ri}
	}
	return status{kind: ok, rule: ri, token: first}
}

// check checks found token i against rule ri in Envoy's order: the token
// must parse, its (unverified) iss must be the rule's issuer, and then the
// rule's verifier verifies it.
func (s *session) check(ctx context.Context, ri, i int) status {
	r := s.a.rules[ri]
	canon := s.per[i].same
	st := &s.checked[ri*len(s.found)+canon]
	if st.kind == unchecked {
		*st = s.verify(ctx, r, canon)
	}
	s.tokens[i].Checks = append(s.tokens[i].Checks, Check{Rule: r.ref, Err: st.err})
	out := *st
	out.rule, out.token = ri, i
	return out
}

func (s *session) verify(ctx context.Context, r *rule, i int) status {
	p, err := s.parse(i)
	if err != nil {
		return status{kind: failed, err: err}
	}
	if !routes(r.ref.Issuer, p.Unverified.Issuer) {
		return status{kind: unknownIssuer, err: &token.Error{
			Code:   token.WrongIssuer,
			Detail: fmt.Sprintf("the token's issuer %q (unverified) is not this rule's issuer %q", p.Unverified.Issuer, r.ref.Issuer),
		}}
	}
	t, verr := r.verifier.VerifyParsed(ctx, p)
	if verr != nil {
		return status{kind: failed, err: asTokenError(verr)}
	}
	s.per[i].verified = t
	return status{kind: ok}
}

// routes reports whether a token whose unverified iss is iss goes to the
// rule with issuer ruleIssuer, as Envoy's extractor asks before any
// verification: any token goes to a rule without an issuer; otherwise iss
// must be the rule's issuer, or, for an Entra issuer template, have the
// template's text around a non-empty tenant. This is routing only: the
// rule's verifier checks the issuer (and a template's tenant) strictly.
func routes(ruleIssuer, iss string) bool {
	prefix, suffix, isTemplate := strings.Cut(ruleIssuer, token.TenantPlaceholder)
	if !isTemplate {
		return ruleIssuer == "" || iss == ruleIssuer
	}
	return len(iss) > len(prefix)+len(suffix) && strings.HasPrefix(iss, prefix) && strings.HasSuffix(iss, suffix)
}

// parse parses found token i once and records what it claims for
// explanations.
func (s *session) parse(i int) (*token.Parsed, *token.Error) {
	st := &s.per[i]
	if st.parsed != nil || st.parseErr != nil {
		return st.parsed, st.parseErr
	}
	p, err := token.Parse(s.found[i].raw)
	if err != nil {
		st.parseErr = asTokenError(err)
		return nil, st.parseErr
	}
	st.parsed = p
	s.describe(i, p.Unverified.Issuer, p.Unverified.Audience)
	return p, nil
}

// describe records what found token i (and its repeats) claims, for
// explanations.
func (s *session) describe(i int, iss string, aud []string) {
	for j := range s.found {
		if s.per[j].same == i {
			s.tokens[j].UnverifiedIssuer = iss
			s.tokens[j].UnverifiedAudiences = aud
		}
	}
}

// asTokenError returns err as a *token.Error. Verification only returns
// those; anything else is reported as a malformed token, so that an
// unexpected error still rejects the token.
func asTokenError(err error) *token.Error {
	var terr *token.Error
	if errors.As(err, &terr) {
		return terr
	}
	return &token.Error{Code: token.Malformed, Detail: err.Error(), Err: err}
}

// reject fills in res for a failed status.
func (s *session) reject(res Result, st status) Result {
	res.Status = http.StatusUnauthorized
	if st.err.Code == token.WrongAudience {
		res.Status = http.StatusForbidden
	}
	res.Err = st.err
	switch {
	case st.kind == unknownIssuer:
		loc := s.found[st.token].loc
		var issuers []string
		for _, r := range s.a.rules {
			if r.reads[loc] && !slices.Contains(issuers, r.ref.Issuer) {
				issuers = append(issuers, r.ref.Issuer)
			}
		}
		tid := ""
		if p := s.per[s.per[st.token].same].parsed; p != nil {
			tid = p.Unverified.TenantID
		}
		res.Err = &token.Error{
			Code: token.WrongIssuer,
			Detail: fmt.Sprintf("no rule that reads %s accepts the token (unverified): %s",
				s.tokens[st.token].Location, token.IssuerRejection(s.tokens[st.token].UnverifiedIssuer, tid, issuers)),
		}
	case st.kind == failed && st.err.Code != MultipleTokens:
		ref := s.a.rules[st.rule].ref
		res.Rule = &ref
	}
	return res
}

func (s *session) multipleTokensError() *token.Error {
	var where []string
	for i, t := range s.tokens {
		if s.per[i].same == i {
			where = append(where, t.Location.String())
		}
	}
	return &token.Error{
		Code:   MultipleTokens,
		Detail: fmt.Sprintf("the request carries %d tokens, %d of them different (%s); send one", len(s.found), s.distinct, strings.Join(where, ", ")),
	}
}

// cacheable reports whether the outcome of a session that rule ri decided
// may be cached: the request has one token, and every rule before ri that
// reads its location turned it away for its issuer alone, which does not
// change, so that ri is the rule that will accept it as long as ri's
// checks hold (Cache).
func (s *session) cacheable(ri int) bool {
	if len(s.found) != 1 {
		return false
	}
	loc := s.found[0].loc
	for j := range ri {
		if s.a.rules[j].reads[loc] && s.checked[j*len(s.found)].kind != unknownIssuer {
			return false
		}
	}
	return true
}

// outputs returns the headers rule r sets for token v: its payload and
// claim headers.
func (r *rule) outputs(v *token.Token) []Header {
	var set []Header
	if r.payloadHeader != "" {
		set = append(set, Header{r.payloadHeader, strings.Clone(v.Payload())})
	}
	for _, ch := range r.claimHeaders {
		if val, ok := claimHeaderValue(v.Claims, ch.claim); ok {
			// A copy: a cached entry must not hold on to the token.
			set = append(set, Header{ch.header, strings.Clone(val)})
		}
	}
	return set
}

// changes returns the upstream changes for a request that rule r
// authenticated with tokens found: the output headers set, the client's
// copies of output headers removed (spoofed says there are some under
// other spellings), and the token
// removed from every place the rule found it unless the rule forwards it.
// The Changes share set and the rule's removal lists when it can.
func (a *Authenticator) changes(req *request.Attributes, r *rule, found []extracted, set []Header, spoofed bool) Changes {
	c := Changes{SetHeaders: set}
	if len(found) == 1 {
		c.RemoveHeaders = a.removals(r.remove[found[0].loc], req.Header, spoofed)
	} else {
		c.RemoveHeaders = a.removals(a.outputHeaders, req.Header, spoofed)
		for _, f := range found {
			if l := a.locations[f.loc]; r.reads[f.loc] && !r.forward && l.Kind == InHeader && !slices.Contains(c.RemoveHeaders, l.Name) {
				c.RemoveHeaders = append(slices.Clip(c.RemoveHeaders), l.Name)
			}
		}
	}
	if r.forward {
		return c
	}
	var cookies []string
	query := req.Query
	for li, l := range a.locations {
		if !r.reads[li] || l.Kind == InHeader || !slices.ContainsFunc(found, func(f extracted) bool { return f.loc == li }) {
			continue
		}
		switch l.Kind {
		case InParam:
			query, c.RewriteQuery = withoutParam(query, l.Name), true
		case InCookie:
			cookies = append(cookies, l.Name)
		}
	}
	if c.RewriteQuery {
		c.Query = query
	}
	if len(cookies) > 0 {
		c.SetHeaders = slices.Clip(c.SetHeaders)
		if line, left := withoutCookies(req.Header, cookies); left {
			c.SetHeaders = append(c.SetHeaders, Header{"Cookie", line})
		} else {
			c.RemoveHeaders = append(slices.Clip(c.RemoveHeaders), "Cookie")
		}
	}
	return c
}
