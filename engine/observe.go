package engine

import (
	"context"
	"net/http"
	"time"

	"github.com/idgate/idgate/audit"
	"github.com/idgate/idgate/policy"
	"github.com/idgate/idgate/request"
)

// Observer is told about every decision and every policy reload,
// typically to export metrics. Its methods are called concurrently, on
// the request path, and must not block.
type Observer interface {
	// Decided reports one decision of Decide or Explain for a, and how
	// long it took.
	Decided(a *request.Attributes, d Decision, took time.Duration)
	// Reloaded reports an attempt to load a set of policies: nil when
	// they are now in force, else why the previous set stays.
	Reloaded(err error)
}

// Blocks reports whether a front end must refuse the request: the
// policies denied it, and the engine is not in dry-run mode. When it is
// false the request goes upstream, with the decision's header changes.
func (d Decision) Blocks() bool { return !d.Allowed && !d.DryRun }

// observed decides a request, marks the decision for dry-run mode, and
// records and observes it.
func (e *Engine) observed(ctx context.Context, a *request.Attributes, tr *policy.Trace) Decision {
	sink, obs := e.opts.Audit, e.opts.Observer
	if sink == nil && obs == nil {
		d := e.decide(ctx, a, tr)
		d.DryRun = e.opts.DryRun
		return d
	}
	start := time.Now()
	at := start
	if e.opts.Now != nil {
		at = e.opts.Now()
	}
	d := e.decide(ctx, a, tr)
	took := time.Since(start)
	d.DryRun = e.opts.DryRun
	if sink != nil {
		sink.Record(ctx, newRecord(a, &d, at, took))
	}
	if obs != nil {
		obs.Decided(a, d, took)
	}
	return d
}

// newRecord returns the audit record of decision d for a, made at at.
func newRecord(a *request.Attributes, d *Decision, at time.Time, took time.Duration) audit.Record {
	if a == nil {
		a = &request.Attributes{}
	}
	r := audit.Record{
		Schema:    audit.Schema,
		Time:      at.UTC(),
		RequestID: a.RequestID,
		Frontend:  a.Frontend,
		Decision:  verdict(d.Allowed),
		Enforced:  !d.DryRun,
		Status:    d.Status,
		Reason:    d.Reason,
		Detail:    d.Detail,
		Policy:    d.Policy,
		Rule:      d.Rule,
		Method:    a.Method,
		Host:      a.Host,
		Path:      a.Path,
		SourceIP:  a.SourceIP,
		RemoteIP:  a.RemoteIP,
		Latency:   took,
	}
	if id := d.Identity; id != nil {
		r.Principal = id.Principal()
		r.OID = id.Claims.String("oid")
		r.TID = id.Claims.String("tid")
		r.AppID = id.Presenter
		if r.AppID == "" {
			r.AppID = id.Claims.String("appid")
		}
		r.TokenFingerprint = id.Fingerprint
	}
	if d.Authn.Status == http.StatusOK {
		// Authorization ran: what dry-run and AUDIT policies said.
		r.DryRun = dryRunOutcome(d.Authz)
		if m := d.Authz.Audit; m.Matched() {
			r.Audit = audit.Match{Policy: m.Policy, Rule: m.Rule}
		}
	}
	return r
}

// dryRunOutcome returns what authorization would have decided with the
// dry-run policies enforced too, as the engine decides (a CUSTOM match
// denies); the zero Outcome when no dry-run policy is loaded.
func dryRunOutcome(z policy.Decision) audit.Outcome {
	if !z.HasDryRun() {
		return audit.Outcome{}
	}
	o := z.DryRun
	if m := o.Custom; m.Matched() {
		return audit.Outcome{Decision: audit.Deny, Status: http.StatusForbidden, Reason: CustomNotConfigured, Policy: m.Policy, Rule: m.Rule}
	}
	out := audit.Outcome{Decision: verdict(o.Allowed), Status: o.Status, Reason: string(o.Reason), Rule: -1}
	if o.By.Matched() {
		out.Policy, out.Rule = o.By.Policy, o.By.Rule
	}
	return out
}

func verdict(allowed bool) string {
	if allowed {
		return audit.Allow
	}
	return audit.Deny
}
