package token

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync/atomic"
	"time"
)

// DefaultSkew is the clock skew allowed for exp, nbf and iat when
// Config.Skew is zero (Envoy's default).
const DefaultSkew = 60 * time.Second

// Config says which tokens a Verifier accepts.
type Config struct {
	// Issuers are the accepted iss values; empty accepts any issuer. An
	// issuer may contain TenantPlaceholder: it then matches any tenant
	// GUID, and the token's tid claim must be that GUID.
	Issuers []string
	// AllowedTenants restricts the GUIDs TenantPlaceholder matches; empty
	// allows any tenant. Exact issuers are not affected.
	AllowedTenants []string
	// Audiences are the accepted aud values; empty means aud is not
	// checked. Comparison follows Envoy: a leading "http://" or
	// "https://" and one trailing "/" are ignored on both sides.
	Audiences []string
	// Keys supplies the verification keys. Required.
	Keys KeySource
	// Skew is the clock skew allowed for exp, nbf and iat, truncated to
	// whole seconds. Zero means DefaultSkew; a negative value allows none.
	Skew time.Duration
	// Now returns the time tokens are checked at; nil means time.Now.
	Now func() time.Time
}

// A Verifier checks tokens against one Config. It is safe for concurrent
// use.
type Verifier struct {
	issuers   issuerSet
	audiences audienceSet
	keys      KeySource
	skew      int64 // seconds, ≥ 0
	now       func() time.Time
	// refs are the shared key refs of the last key set a token was
	// verified with (Receipt).
	refs atomic.Pointer[keyRefs]
}

// NewVerifier returns a Verifier for cfg, or an error if cfg is unusable.
func NewVerifier(cfg Config) (*Verifier, error) {
	if cfg.Keys == nil {
		return nil, errors.New("token: no key source configured")
	}
	issuers, err := newIssuerSet(cfg.Issuers, cfg.AllowedTenants)
	if err != nil {
		return nil, fmt.Errorf("token: %w", err)
	}
	if len(cfg.AllowedTenants) > 0 && len(issuers.templates) == 0 {
		return nil, fmt.Errorf("token: allowed tenants need an issuer with %s", TenantPlaceholder)
	}
	v := &Verifier{
		issuers:   issuers,
		audiences: newAudienceSet(cfg.Audiences),
		keys:      cfg.Keys,
		now:       cfg.Now,
	}
	switch {
	case cfg.Skew == 0:
		v.skew = int64(DefaultSkew / time.Second)
	case cfg.Skew > 0:
		v.skew = int64(cfg.Skew / time.Second)
	}
	if v.now == nil {
		v.now = time.Now
	}
	return v, nil
}

// Verify parses raw, a compact JWS, and verifies it: signature, issuer,
// times and audience. It returns the verified token, or an *Error whose
// Code is the first failed check in the order the Code constants list.
// An Error with a non-nil Err means the key source failed.
// The Token's Receipt lets v tell later whether it would accept the token
// again (Recheck).
func (v *Verifier) Verify(ctx context.Context, raw string) (*Token, error) {
	p, err := Parse(raw)
	if err != nil {
		return nil, err
	}
	return v.VerifyParsed(ctx, p)
}

// VerifyParsed verifies a token Parse returned, as Verify does, without
// parsing it again.
func (v *Verifier) VerifyParsed(ctx context.Context, p *Parsed) (*Token, error) {
	if p == nil || p.alg == nil {
		return nil, errorf(Malformed, "not a token that Parse returned")
	}
	keys, k, err := v.checkSignature(ctx, p)
	if err == nil {
		err = v.checkClaims(p)
	}
	if err != nil {
		if hint := v.kindHint(p); hint != "" {
			err.Detail += "; " + hint
		}
		return nil, err
	}
	t := p.Unverified
	t.receipt = v.newReceipt(p, keys, k)
	return &t, nil
}

// checkSignature finds the keys the token may be verified with and
// verifies the signature, refreshing the keys once if none matches. It
// returns the key set used and the index in it of the key that verified
// the signature.
func (v *Verifier) checkSignature(ctx context.Context, p *Parsed) ([]Key, int, *Error) {
	keys, err := v.keys.Keys(ctx)
	if err != nil {
		return nil, -1, &Error{Code: UnknownKID, Detail: "no keys to verify with: " + oneLine(err.Error()), Err: err}
	}
	k, e := v.verifySignature(keys, p)
	if e == nil || e.Code != UnknownKID {
		return keys, k, e
	}
	keys, err = v.keys.Refresh(ctx)
	if err != nil {
		e.Detail += "; refreshing the keys failed: " + oneLine(err.Error())
		e.Err = err
		return nil, -1, e
	}
	k, e = v.verifySignature(keys, p)
	return keys, k, e
}

// verifySignature checks the signature with the candidate keys: with a
// kid, the keys with that kid and those without one; without a kid, every
// key of the algorithm's type. The token is good if any candidate that
// allows its alg verifies it and was published for its issuer; its index
// in keys is returned.
func (v *Verifier) verifySignature(keys []Key, p *Parsed) (int, *Error) {
	t, alg := &p.Unverified, p.alg
	var (
		matched, allowed int
		refused          string // why the first matched key does not allow alg
		sigErr           error  // why the first allowed key did not verify
		sigKey           string
		otherIssuer      *Key // a key that verified, but is another issuer's
	)
	for i := range keys {
		k := &keys[i]
		if t.KeyID != "" {
			if k.ID != "" && k.ID != t.KeyID {
				continue
			}
		} else if !alg.fitsType(k.Public) {
			continue
		}
		matched++
		if r := alg.refusal(k); r != "" {
			if refused == "" {
				refused = fmt.Sprintf("key %s does not allow %s: %s", keyName(i, k), alg.name, r)
			}
			continue
		}
		allowed++
		if err := alg.verify(k.Public, p.signingInput, p.signature); err != nil {
			if sigErr == nil {
				sigErr, sigKey = err, keyName(i, k)
			}
			continue
		}
		if !keyIssuerFits(k.Issuer, t.Issuer, t.TenantID) {
			if otherIssuer == nil {
				otherIssuer = k
			}
			continue
		}
		return i, nil
	}
	switch {
	case matched == 0:
		return -1, &Error{Code: UnknownKID, Detail: unknownKeyDetail(keys, p)}
	case allowed == 0:
		return -1, &Error{Code: AlgNotAllowed, Detail: refused}
	case otherIssuer != nil:
		return -1, &Error{Code: WrongIssuer, Detail: keyIssuerDetail(otherIssuer, t)}
	case allowed == 1:
		return -1, errorf(BadSignature, "signature does not verify with key %s: %v", sigKey, sigErr)
	default:
		return -1, errorf(BadSignature, "signature verifies with none of the %d keys that allow %s (key %s: %v)",
			allowed, alg.name, sigKey, sigErr)
	}
}

// checkClaims checks the verified claims: issuer, times, audience.
func (v *Verifier) checkClaims(p *Parsed) *Error {
	t := &p.Unverified
	if !v.issuers.accepts(t.Issuer, t.TenantID) {
		return &Error{Code: WrongIssuer, Detail: v.issuers.rejection(t)}
	}
	if err := v.checkTimes(p.exp, p.nbf, p.iat); err != nil {
		return err
	}
	if !v.audiences.accepts(t.Audience) {
		return &Error{Code: WrongAudience, Detail: v.audiences.rejection(t)}
	}
	return nil
}

// checkTimes checks exp, nbf and iat against the current time.
func (v *Verifier) checkTimes(exp, nbf, iat date) *Error {
	now := v.now().Unix()
	if v.expired(exp, now) {
		return errorf(Expired, "token expired at %s (exp %d), %s ago; now is %s, allowed skew %ds",
			formatDate(exp.sec), exp.sec, formatSeconds(now-exp.sec), formatDate(now), v.skew)
	}
	for _, d := range []struct {
		name string
		date
	}{{"nbf", nbf}, {"iat", iat}} {
		if d.set && now <= math.MaxInt64-v.skew && now+v.skew < d.sec {
			what := "is not valid before"
			if d.name == "iat" {
				what = "was issued at"
			}
			return errorf(NotYetValid, "token %s %s (%s %d), %s from now; now is %s, allowed skew %ds",
				what, formatDate(d.sec), d.name, d.sec, formatSeconds(d.sec-now), formatDate(now), v.skew)
		}
	}
	return nil
}

// expired reports whether a token with this exp claim has expired at now,
// allowing for the skew.
func (v *Verifier) expired(exp date, now int64) bool {
	return exp.set && exp.sec <= math.MaxInt64-v.skew && now > exp.sec+v.skew
}

// keyName names the i-th key of a set for a message.
func keyName(i int, k *Key) string {
	if k.ID == "" {
		return fmt.Sprintf("#%d (no kid)", i+1)
	}
	return quote(k.ID)
}

// oneLine keeps a message from a key source on one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// AcceptsIssuer reports whether a token with this iss and tid claim comes
// from an accepted issuer. It proves nothing about a token: use it to route
// a Parsed token, or to decide whether to fetch keys for its issuer.
func (v *Verifier) AcceptsIssuer(iss, tid string) bool {
	return v.issuers.accepts(iss, tid)
}
