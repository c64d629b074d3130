package authn

import (
	"encoding/json"
	"maps"
	"math"
	"strconv"
	"strings"

	"golang.org/x/net/http/httpguts"

	"github.com/idgate/idgate/request"
	"github.com/idgate/idgate/token"
)

// alwaysSplit are the claims Istio always splits on spaces
// (pilot/pkg/security/authn/policy_applier.go buildSpaceDelimitedClaims).
var alwaysSplit = []string{"scope", "permission"}

// newIdentity returns the identity a verified token gives, as Istio's
// request.auth.* attributes see it (istio-semantics.md §3.6): principal
// "iss/sub", audiences, presenter "azp", and the claims with each claim
// in split that holds a string turned into the list of its
// space-separated words.
func newIdentity(t *token.Token, split []string) *request.Identity {
	return &request.Identity{
		Principal: t.Issuer + "/" + t.Subject,
		Issuer:    t.Issuer,
		Subject:   t.Subject,
		Audiences: t.Audience,
		Presenter: t.Presenter,
		Claims:    splitClaims(t.Claims, split),
		Raw:       t.Raw,
	}
}

// splitClaims returns claims with the top-level string claims named in
// split replaced by their words, split on ' ' with empty words dropped, as
// Envoy's normalize_payload_in_metadata does. A claim with no words is
// left as it is. claims itself is not modified.
func splitClaims(claims map[string]any, split []string) map[string]any {
	out, copied := claims, false
	for _, name := range split {
		s, ok := claims[name].(string)
		if !ok {
			continue
		}
		var words []any
		for w := range strings.SplitSeq(s, " ") {
			if w != "" {
				words = append(words, w)
			}
		}
		if len(words) == 0 {
			continue
		}
		if !copied {
			out, copied = maps.Clone(claims), true
		}
		out[name] = words
	}
	return out
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
