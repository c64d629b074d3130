package extauthz

import (
	"net/url"
	"slices"
	"strings"
)

// removedParams returns the names of the query parameters that are in the
// raw query before and not in after: the parameters authentication took a
// token from and does not forward (authn.Changes.Query), for Envoy's
// query_parameters_to_remove. Each name is given as received and, when
// that differs, decoded, since Envoy versions compare one or the other.
func removedParams(before, after string) []string {
	kept := map[string]bool{}
	for seg := range strings.SplitSeq(after, "&") {
		name, _, _ := strings.Cut(seg, "=")
		kept[decode(name)] = true
	}
	var out []string
	for seg := range strings.SplitSeq(before, "&") {
		if seg == "" {
			continue
		}
		raw, _, _ := strings.Cut(seg, "=")
		name := decode(raw)
		if kept[name] {
			continue
		}
		for _, n := range []string{raw, name} {
			if !slices.Contains(out, n) {
				out = append(out, n)
			}
		}
	}
	return out
}

// decode decodes a query parameter name; one that does not decode is
// taken as it is.
func decode(s string) string {
	if u, err := url.QueryUnescape(s); err == nil {
		return u
	}
	return s
}
