// Package engine decides requests: it authenticates them with the
// RequestAuthentication policies, authorizes them with the
// AuthorizationPolicies, and says why. Every front end (reverse proxy,
// ext_authz, forward-auth) and every offline command (test, explain) calls
// the same Decide, so a policy gives the same answer however traffic
// arrives.
package engine

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	securityv1beta1 "istio.io/api/security/v1beta1"

	"github.com/idgate/idgate/audit"
	"github.com/idgate/idgate/authn"
	"github.com/idgate/idgate/policy"
	"github.com/idgate/idgate/request"
	"github.com/idgate/idgate/token"
)

// Reason codes of decisions that neither authentication nor the policies'
// own reasons name. Authentication failures carry the token's code
// (token.Code, e.g. "expired"); authorization outcomes carry a
// policy.Reason (e.g. "denied_by_policy").
const (
	// CustomNotConfigured: a CUSTOM policy matched and names an extension
	// provider idgate cannot call. Istio denies such requests (403);
	// so does idgate.
	CustomNotConfigured = "custom_provider_not_configured"
)

// Options configure an Engine.
type Options struct {
	// Keys returns the keys that verify the tokens of a jwtRule.
	Keys func(rule *securityv1beta1.JWTRule) (token.KeySource, error)
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// Skew is the clock skew allowed for token times; zero means 60 s.
	Skew time.Duration
	// AllowedTenants restricts Entra multi-tenant issuers.
	AllowedTenants []string
	// TokenCache, if set, remembers verified tokens so that a token sent
	// again is not verified again (authn.Cache). Reload clears it: new
	// policies verify every token afresh. Explain never uses it.
	TokenCache *authn.Cache

	// DryRun is idgate's global dry-run mode (--dry-run): every request
	// is decided and recorded as usual, and no decision is enforced
	// (Decision.DryRun is set; see Decision.Blocks).
	DryRun bool
	// Audit receives one record for every Decide and Explain call; nil
	// means no records. Offline commands (test, explain) leave it nil.
	Audit audit.Sink
	// Observer is told about every decision and policy reload (for
	// metrics); nil means none.
	Observer Observer
}

// An Engine decides requests against one set of policies. It is safe for
// concurrent use; Reload swaps in a new set atomically, so every request
// sees either the old set or the new one, never a mix.
type Engine struct {
	opts    Options
	current atomic.Pointer[compiled]
}

// compiled is one complete set of compiled policies.
type compiled struct {
	docs  []*policy.Document
	authn *authn.Authenticator
	authz *policy.Set
	// firstAllow is the ALLOW policy a no_allow_match denial names: the
	// first enforced one in evaluation order.
	firstAllow string
	// details are the Decision.Detail of the decisions made by a policy
	// rule, made once at load time.
	details map[ruleRef]string
}

// ruleRef names one rule of an AuthorizationPolicy.
type ruleRef struct {
	policy string
	rule   int
}

// auditClaims are the claims audit records read (newRecord).
var auditClaims = []string{"appid", "oid", "tid"}

// New compiles docs into an Engine.
func New(docs []*policy.Document, opts Options) (*Engine, error) {
	e := &Engine{opts: opts}
	if err := e.Reload(docs); err != nil {
		return nil, err
	}
	return e, nil
}

// Reload compiles docs and, if they compile, makes them the policies
// every later decision uses. On error the previous policies stay in force.
// Options.Observer is told the outcome (New's first load included).
func (e *Engine) Reload(docs []*policy.Document) error {
	err := e.reload(docs)
	if e.opts.Observer != nil {
		e.opts.Observer.Reloaded(err)
	}
	return err
}

func (e *Engine) reload(docs []*policy.Document) error {
	az, err := policy.Compile(docs)
	if err != nil {
		return fmt.Errorf("compile AuthorizationPolicies: %w", err)
	}
	an, err := authn.Compile(docs, authn.Options{
		Keys:           e.opts.Keys,
		Now:            e.opts.Now,
		Skew:           e.opts.Skew,
		AllowedTenants: e.opts.AllowedTenants,
		Cache:          e.opts.TokenCache,
		Claims:         append(az.Claims(), auditClaims...),
	})
	if err != nil {
		return fmt.Errorf("compile RequestAuthentication policies: %w", err)
	}
	e.current.Store(&compiled{docs: docs, authn: an, authz: az, firstAllow: firstAllow(docs), details: ruleDetails(docs)})
	if c := e.opts.TokenCache; c != nil {
		// The old rules' entries can no longer be hit; free them.
		c.Clear()
	}
	return nil
}

// Documents returns the policy documents in force.
func (e *Engine) Documents() []*policy.Document { return e.current.Load().docs }

// Authenticator returns the compiled RequestAuthentication policies in
// force, for front ends that need the header names idgate sets.
func (e *Engine) Authenticator() *authn.Authenticator { return e.current.Load().authn }

// Decision is the answer for one request.
type Decision struct {
	// Allowed says whether the request may proceed.
	Allowed bool
	// Status is 200 (allowed), 401 (a token failed authentication) or
	// 403 (denied, or a token for an audience no rule accepts).
	Status int
	// Reason is a stable code: a token.Code for authentication failures,
	// a policy.Reason for authorization outcomes, or CustomNotConfigured.
	Reason string
	// Detail is one human sentence that says why.
	Detail string
	// Policy is the deciding policy ("namespace/name"): the
	// RequestAuthentication whose rule rejected the token, or the
	// AuthorizationPolicy that denied or allowed; empty when none did.
	Policy string
	// Rule is the index of the deciding jwtRule or rule in Policy; -1
	// when Policy is empty.
	Rule int
	// Identity is the verified identity, nil for anonymous requests.
	Identity *request.Identity
	// Authn and Authz are the full results of both stages, for audit
	// records and explanations. Authz is the zero Decision when
	// authentication failed and no CUSTOM policy was consulted.
	Authn authn.Result
	Authz policy.Decision
	// Trace is the policy-by-policy account of authorization, set only
	// by Explain.
	Trace *policy.Trace
	// DryRun is set when the engine runs in dry-run mode
	// (Options.DryRun): the decision above is what the policies decided,
	// and it is recorded, but not enforced; the request goes through
	// whatever it says. Front ends refuse a request only when Blocks
	// reports true.
	DryRun bool
}

// Decide authenticates and authorizes a request. a.Path must be the
// normalized path (request.NormalizePath).
//
// Every call is recorded (Options.Audit) and observed (Options.Observer)
// exactly once.
func (e *Engine) Decide(ctx context.Context, a *request.Attributes) Decision {
	return e.observed(ctx, a, nil)
}

// Explain decides like Decide and also records, in Decision.Trace, how
// every policy and rule matched or failed. It is recorded and observed
// like Decide.
func (e *Engine) Explain(ctx context.Context, a *request.Attributes) Decision {
	return e.observed(ctx, a, &policy.Trace{})
}

func (e *Engine) decide(ctx context.Context, a *request.Attributes, tr *policy.Trace) Decision {
	c := e.current.Load()
	d := Decision{Rule: -1, Trace: tr}

	// Istio's order: CUSTOM, then authentication, then DENY and ALLOW.
	// CUSTOM rules cannot look at the token (Istio's validation), so they
	// match alike with and without an identity; evaluating after
	// authentication only matters when authentication fails.
	if tr != nil {
		d.Authn = c.authn.Explain(ctx, a)
	} else {
		d.Authn = c.authn.Authenticate(ctx, a)
	}
	if d.Authn.Status != http.StatusOK {
		d.Authz = c.authz.Evaluate(a, nil, tr)
		if d.Authz.Custom.Matched() {
			return e.custom(d)
		}
		d.Status = d.Authn.Status
		d.Reason = string(d.Authn.Err.Code)
		d.Detail = d.Authn.Err.Detail
		if r := d.Authn.Rule; r != nil {
			d.Policy, d.Rule = r.Policy, r.Index
		}
		return d
	}
	d.Identity = d.Authn.Identity
	d.Authz = c.authz.Evaluate(a, d.Identity, tr)
	if d.Authz.Custom.Matched() {
		return e.custom(d)
	}
	o := d.Authz.Outcome
	d.Allowed, d.Status, d.Reason = o.Allowed, o.Status, string(o.Reason)
	switch {
	case o.By.Matched():
		d.Policy, d.Rule = o.By.Policy, o.By.Rule
	case o.Reason == policy.NoAllowMatch:
		// No ALLOW policy matched: the ALLOW policies decided, by not
		// matching. Name the first, as users expect a denial by their
		// "require a token" policy to be attributed to it.
		d.Policy = c.firstAllow
	}
	d.Detail = c.outcomeDetail(o)
	return d
}

func (e *Engine) custom(d Decision) Decision {
	m := d.Authz.Custom
	d.Allowed, d.Status, d.Reason = false, http.StatusForbidden, CustomNotConfigured
	d.Policy, d.Rule = m.Policy, m.Rule
	d.Detail = fmt.Sprintf("CUSTOM policy %s rule %d sends the request to extension provider %q, which idgate cannot call; denied as Istio denies when a provider is missing", m.Policy, m.Rule, m.Provider)
	return d
}

func (c *compiled) outcomeDetail(o policy.Outcome) string {
	switch o.Reason {
	case policy.AllowedNoPolicies:
		return "no DENY policy matched and there is no ALLOW policy"
	case policy.AllowedByPolicy, policy.DeniedByPolicy:
		if d, ok := c.details[ruleRef{o.By.Policy, o.By.Rule}]; ok {
			return d
		}
		return ruleDetail(o.Reason, o.By.Policy, o.By.Rule)
	case policy.NoAllowMatch:
		return "no ALLOW policy matched the request"
	}
	return string(o.Reason)
}

// ruleDetails returns the details of the decisions the rules of the
// enforced ALLOW and DENY policies in docs make.
func ruleDetails(docs []*policy.Document) map[ruleRef]string {
	details := map[ruleRef]string{}
	for _, d := range docs {
		ap := d.AuthorizationPolicy
		if ap == nil {
			continue
		}
		var reason policy.Reason
		switch ap.GetAction() {
		case securityv1beta1.AuthorizationPolicy_ALLOW:
			reason = policy.AllowedByPolicy
		case securityv1beta1.AuthorizationPolicy_DENY:
			reason = policy.DeniedByPolicy
		default:
			continue
		}
		for i := range ap.GetRules() {
			details[ruleRef{d.ID(), i}] = ruleDetail(reason, d.ID(), i)
		}
	}
	return details
}

// ruleDetail returns the detail of a decision rule i of policy id made.
func ruleDetail(reason policy.Reason, id string, i int) string {
	if reason == policy.AllowedByPolicy {
		return fmt.Sprintf("allowed by ALLOW policy %s rule %d", id, i)
	}
	return fmt.Sprintf("denied by DENY policy %s rule %d", id, i)
}

// firstAllow returns the ID of the first enforced ALLOW policy, in the
// order policies are evaluated (by namespace/name), or "".
func firstAllow(docs []*policy.Document) string {
	first := ""
	for _, d := range docs {
		ap := d.AuthorizationPolicy
		if ap == nil || ap.GetAction() != securityv1beta1.AuthorizationPolicy_ALLOW || d.DryRun {
			continue
		}
		if id := d.ID(); first == "" || id < first {
			first = id
		}
	}
	return first
}
