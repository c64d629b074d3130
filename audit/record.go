// Package audit writes the audit trail: one JSON record per decision, in a
// documented, versioned schema (docs/audit.md), to stdout or a file.
//
// The engine builds a Record for every decision and hands it to a Sink.
// The Writer sink queues records and writes them as JSON lines from a
// goroutine of its own, so that a slow disk does not slow requests down;
// when its queue is full it either waits (Block, the default) or drops the
// record, counting and logging the drop (Drop). No record is lost
// silently: Stats accounts for every record a Writer was given.
package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"net/netip"
	"time"
	"unicode/utf8"
	"unsafe"
)

// Schema names the version of the record format. It changes only when a
// field is removed or changes meaning; fields may be added within a
// version, so readers must ignore fields they do not know.
const Schema = "idgate.audit/v1"

// The values of Record.Decision and Outcome.Decision.
const (
	Allow = "allow"
	Deny  = "deny"
)

// Record is the account of one decision. Its JSON form is the audit
// schema (docs/audit.md): the JSON names below are stable within Schema.
//
// A Record never holds a token: TokenFingerprint identifies one. Nor does
// it hold the query string, which may carry a token.
type Record struct {
	// Schema is the format version, Schema; the Writer fills it in when
	// it is empty.
	Schema string `json:"schema"`
	// Time is when the decision began, in UTC.
	Time time.Time `json:"time"`
	// RequestID is the id the response carries in X-Request-Id.
	RequestID string `json:"request_id"`
	// Frontend names the front end that received the request ("proxy",
	// "extauthz-grpc", "extauthz-http", "nginx", "forward-auth", ...).
	Frontend string `json:"frontend"`

	// Decision is Allow or Deny: what the policies decided.
	Decision string `json:"decision"`
	// Enforced is false when idgate runs in dry-run mode: the decision
	// was recorded, and the request let through whatever it said.
	Enforced bool `json:"enforced"`
	// Status is the HTTP status of the decision: 200, 401 or 403.
	Status int `json:"status"`
	// Reason is the decision's stable reason code (a token error code
	// such as "expired", or a policy reason such as "denied_by_policy").
	Reason string `json:"reason"`
	// Detail is one human sentence that says why.
	Detail string `json:"detail"`
	// Policy is the deciding policy ("namespace/name"), "" when none
	// did; for no_allow_match, the first ALLOW policy. Rule is the index
	// of its deciding rule (jwtRule for a RequestAuthentication), -1 when
	// no rule decided.
	Policy string `json:"policy"`
	Rule   int    `json:"rule"`

	// Principal is the verified "<iss>/<sub>"; empty (and omitted) for
	// an anonymous request, as are the other identity fields.
	Principal string `json:"principal,omitempty"`
	// OID and TID are the verified Entra "oid" (object id) and "tid"
	// (tenant id) claims, when the token has them.
	OID string `json:"oid,omitempty"`
	TID string `json:"tid,omitempty"`
	// AppID is the client application: the verified "azp" (v2 tokens),
	// else "appid" (v1 tokens).
	AppID string `json:"app_id,omitempty"`
	// TokenFingerprint identifies the verified token without revealing
	// it (see Fingerprint).
	TokenFingerprint string `json:"token_fingerprint,omitempty"`

	// Method, Host and Path are the request's method, authority (with
	// its port when sent) and normalized path, without the query.
	Method string `json:"method"`
	Host   string `json:"host"`
	Path   string `json:"path"`
	// SourceIP is the direct peer (source.ip); RemoteIP the client after
	// the trusted-proxy rules (remote.ip). Empty when unknown.
	SourceIP netip.Addr `json:"source_ip"`
	RemoteIP netip.Addr `json:"remote_ip"`

	// Latency is how long the decision took; JSON: integer nanoseconds.
	Latency time.Duration `json:"latency_ns"`

	// DryRun is what the decision would have been had the dry-run
	// policies (istio.io/dry-run: "true") been enforced too; omitted when
	// no dry-run policy is loaded or authorization did not run (the
	// token was rejected).
	DryRun Outcome `json:"dry_run,omitzero"`
	// Audit is the AUDIT policy that matched the request; omitted when
	// none did or authorization did not run.
	Audit Match `json:"audit,omitzero"`
}

// Outcome is an authorization outcome, as in Record.DryRun.
type Outcome struct {
	Decision string `json:"decision"` // Allow or Deny
	Status   int    `json:"status"`
	Reason   string `json:"reason"`
	// Policy and Rule are the deciding policy and rule: "" and -1 when
	// none decided (no policy at all, or no ALLOW policy matched).
	Policy string `json:"policy"`
	Rule   int    `json:"rule"`
}

// Match names a policy and the index of its first matching rule.
type Match struct {
	Policy string `json:"policy"`
	Rule   int    `json:"rule"`
}

// Fingerprint returns the fingerprint of a raw token: the first 16 hex
// digits (8 bytes) of the SHA-256 of the token exactly as received. It
// finds the records of one token, and of a token someone holds, without
// the trail revealing any token; "" for "".
func Fingerprint(raw string) string {
	if raw == "" {
		return ""
	}
	// sha256 only reads its input: a view of the string saves copying
	// the token.
	sum := sha256.Sum256(unsafe.Slice(unsafe.StringData(raw), len(raw)))
	return hex.EncodeToString(sum[:8])
}

// MaxField bounds the length in bytes of every string field of a record
// a Writer queues; a longer value (a huge path, say) is cut at a UTF-8
// boundary and ends with "…". This bounds the memory a full queue holds.
const MaxField = 2048

// bound cuts the string fields of r to MaxField.
func (r *Record) bound() {
	for _, s := range []*string{
		&r.Schema, &r.RequestID, &r.Frontend, &r.Decision, &r.Reason, &r.Detail,
		&r.Policy, &r.Principal, &r.OID, &r.TID, &r.AppID, &r.TokenFingerprint,
		&r.Method, &r.Host, &r.Path, &r.DryRun.Decision, &r.DryRun.Reason,
		&r.DryRun.Policy, &r.Audit.Policy,
	} {
		if len(*s) > MaxField {
			*s = cut(*s)
		}
	}
}

// cut returns s cut to MaxField bytes, "…" included. The result is a new
// string, so the original, long one can be freed.
func cut(s string) string {
	const ellipsis = "…"
	n := MaxField - len(ellipsis)
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + ellipsis
}
