package token

import "strings"

// audienceSet holds the accepted audiences, normalised.
type audienceSet struct {
	normal map[string]bool // nil = audience not checked
	all    []string        // as configured, for messages
}

func newAudienceSet(audiences []string) audienceSet {
	if len(audiences) == 0 {
		return audienceSet{}
	}
	s := audienceSet{normal: make(map[string]bool, len(audiences)), all: audiences}
	for _, a := range audiences {
		s.normal[normalAudience(a)] = true
	}
	return s
}

// accepts reports whether any of a token's audiences is accepted. An
// empty set accepts every token, with or without aud.
func (s *audienceSet) accepts(aud []string) bool {
	if s.normal == nil {
		return true
	}
	for _, a := range aud {
		if s.normal[normalAudience(a)] {
			return true
		}
	}
	return false
}

// normalAudience applies Envoy's audience rule (jwt_verify_lib
// check_audience.cc): a leading "http://" or "https://" and one trailing
// "/" are removed; nothing else changes, so "api://x/" becomes "api://x"
// but letter case and other schemes stay as they are.
func normalAudience(aud string) string {
	if s, ok := strings.CutPrefix(aud, "http://"); ok {
		aud = s
	} else if s, ok := strings.CutPrefix(aud, "https://"); ok {
		aud = s
	}
	return strings.TrimSuffix(aud, "/")
}
