package authn

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"strings"
	"unique"

	"golang.org/x/net/http/httpguts"

	"github.com/idgate/idgate/audit"
	"github.com/idgate/idgate/request"
	"github.com/idgate/idgate/token"
)

// alwaysSplit are the claims Istio always splits on spaces
// (pilot/pkg/security/authn/policy_applier.go buildSpaceDelimitedClaims).
var alwaysSplit = []string{"scope", "permission"}

// newIdentity returns the identity a verified token gives, as Istio's
// request.auth.* attributes see it (istio-semantics.md §3.6); see
// fillIdentity.
func newIdentity(t *token.Token, r *rule, keep []string) *request.Identity {
	id := new(request.Identity)
	fillIdentity(id, t, r, keep, nil)
	return id
}

// fillIdentity sets id to the identity token t, which rule r accepted,
// gives: principal "iss/sub", audiences, presenter "azp", the token's
// fingerprint, and its claims with each claim the rule splits that holds
// a string turned into the list of its space-separated words. When keep
// is not nil, only the claims it names are kept.
//
// An identity a Cache keeps (share is not nil) holds nothing of t's
// memory, interns the strings many tokens hold alike (issuer, audiences,
// presenter, the values of the shared claims and every string in a list)
// and holds the lists of strings share returns, which other identities
// hold too. An identity for one request (share is nil) shares t's values.
func fillIdentity(id *request.Identity, t *token.Token, r *rule, keep []string, share func([]any) any) {
	kept := share != nil
	id.Issuer, id.Subject, id.Audiences, id.Presenter = t.Issuer, t.Subject, t.Audience, t.Presenter
	if kept {
		id.Issuer = intern(t.Issuer)
		id.Subject = strings.Clone(t.Subject)
		id.Audiences = r.audienceList(t.Audience)
		id.Presenter = intern(t.Presenter)
	}
	id.Fingerprint = audit.Fingerprint(t.Raw)
	var list []request.Claim
	add := func(name string, v any) {
		v = claimValue(name, v, r.split, kept)
		if l, ok := v.([]any); ok && kept {
			if shared := share(l); shared != nil {
				v = shared
			}
		}
		list = append(list, request.Claim{Name: name, Value: v})
	}
	if keep == nil {
		list = make([]request.Claim, 0, len(t.Claims))
		for name, v := range t.Claims {
			if kept {
				name = intern(name)
			}
			add(name, v)
		}
	} else {
		n := 0
		for _, name := range keep {
			if _, ok := t.Claims[name]; ok {
				n++
			}
		}
		list = make([]request.Claim, 0, n)
		for _, name := range keep {
			if v, ok := t.Claims[name]; ok {
				add(name, v)
			}
		}
	}
	id.Claims, _ = request.MakeClaims(list) // names are unique
}

// audienceList returns the audiences of a token the rule accepted: the
// rule's own one-element list when the token has just that audience, else
// a list of interned strings.
func (r *rule) audienceList(aud []string) []string {
	if len(aud) == 1 {
		for _, own := range r.audiences {
			if own[0] == aud[0] {
				return own
			}
		}
	}
	if aud == nil {
		return nil
	}
	out := make([]string, len(aud))
	for i, a := range aud {
		out[i] = intern(a)
	}
	return out
}

// shared are the claims whose string values many tokens hold alike (the
// tenant, the client, the issuer); identities intern them.
var shared = map[string]bool{"iss": true, "aud": true, "tid": true, "azp": true, "appid": true, "idp": true, "ver": true}

// claimValue returns claim value v as an identity holds it: a string
// claim named in split becomes the list of its words, split on ' ' with
// empty words dropped, as Envoy's normalize_payload_in_metadata does (a
// claim with no words is left as it is). For an identity a Cache keeps,
// strings are copied, so that it does not hold on to the token it came
// from, and the shared ones interned.
func claimValue(name string, v any, split []string, kept bool) any {
	if s, ok := v.(string); ok {
		if slices.Contains(split, name) {
			var words []any
			for w := range strings.SplitSeq(s, " ") {
				if w == "" {
					continue
				}
				if kept {
					words = append(words, internAny(w))
				} else {
					words = append(words, w)
				}
			}
			if words != nil {
				return words
			}
		}
		if kept && shared[name] {
			return internAny(s)
		}
	}
	if !kept {
		return v
	}
	return copyValue(v)
}

// copyValue returns a copy of the decoded JSON value v that shares no
// memory with it, the strings in lists interned.
func copyValue(v any) any {
	switch x := v.(type) {
	case string:
		return strings.Clone(x)
	case json.Number:
		return json.Number(strings.Clone(string(x)))
	case []any:
		out := make([]any, len(x))
		for i, el := range x {
			if s, ok := el.(string); ok {
				out[i] = internAny(s)
			} else {
				out[i] = copyValue(el)
			}
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, el := range x {
			out[strings.Clone(k)] = copyValue(el)
		}
		return out
	}
	return v
}

// intern returns the one copy of s that every identity shares.
func intern(s string) string {
	if s == "" {
		return ""
	}
	return unique.Make(s).Value()
}

// internAny returns s as an interface value that every identity shares,
// so that the string is not boxed once per identity.
func internAny(s string) any {
	return unique.Make[any](intern(s)).Value()
}

// claimHeaderValue returns the value of the claim at path (dot-separated
// names into nested objects, as Envoy's claim_to_headers reads them) as a
// header value. Strings are taken as they are, numbers formatted as Envoy
// formats them, booleans as "true"/"false". As an extension, a list of
// such values gives its values joined with ","; a value that holds
// anything else (an object, a list inside the list, null) gives no header.
// ok is false when there is no value, or it is empty, or it could not be
// sent as a header value (a control character such as CR or LF).
func claimHeaderValue(claims map[string]any, path string) (string, bool) {
	var v any = claims
	for name := range strings.SplitSeq(path, ".") {
		obj, ok := v.(map[string]any)
		if !ok {
			return "", false
		}
		if v, ok = obj[name]; !ok {
			return "", false
		}
	}
	var s string
	if list, isList := v.([]any); isList {
		parts := make([]string, 0, len(list))
		for _, e := range list {
			p, ok := scalar(e)
			if !ok {
				return "", false
			}
			parts = append(parts, p)
		}
		s = strings.Join(parts, ",")
	} else {
		var ok bool
		if s, ok = scalar(v); !ok {
			return "", false
		}
	}
	if s == "" || !httpguts.ValidHeaderFieldValue(s) {
		return "", false
	}
	return s, true
}

// scalar formats a string, number or boolean claim value.
func scalar(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case bool:
		return strconv.FormatBool(x), true
	case json.Number:
		return formatNumber(string(x))
	}
	return "", false
}

// formatNumber formats a JSON number as Envoy does: a non-negative integer
// below 2^64 in decimal, anything else in C's "%f" form ("1.500000",
// "-3.000000"). An integer literal is kept exactly, where Envoy would
// round it through a double.
func formatNumber(lit string) (string, bool) {
	f, err := strconv.ParseFloat(lit, 64)
	if err != nil {
		return "", false
	}
	if _, err := strconv.ParseUint(lit, 10, 64); err == nil {
		return lit, true
	}
	return formatFloat(f), true
}

func formatFloat(f float64) string {
	if f >= 0 && f < math.Exp2(64) && f == math.Trunc(f) {
		return strconv.FormatUint(uint64(f), 10)
	}
	return strconv.FormatFloat(f, 'f', 6, 64)
}
