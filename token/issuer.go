package token

import (
	"fmt"
	"strings"
)

// TenantPlaceholder stands for the tenant GUID in an Entra issuer template
// such as "https://login.microsoftonline.com/{tenantid}/v2.0".
const TenantPlaceholder = "{tenantid}"

// issuerSet holds the accepted issuers: exact strings and templates.
type issuerSet struct {
	exact     map[string]bool
	templates []issuerTemplate
	tenants   map[string]bool // lower-case GUIDs; nil = any tenant
	all       []string        // as configured, for messages
}

// An issuerTemplate is an issuer with TenantPlaceholder in it, split there.
type issuerTemplate struct {
	prefix, suffix string
}

func newIssuerSet(issuers, tenants []string) (issuerSet, error) {
	s := issuerSet{exact: make(map[string]bool), all: issuers}
	for _, iss := range issuers {
		switch n := strings.Count(iss, TenantPlaceholder); {
		case iss == "":
			return s, fmt.Errorf("empty issuer")
		case n == 0:
			s.exact[iss] = true
		case n == 1:
			prefix, suffix, _ := strings.Cut(iss, TenantPlaceholder)
			s.templates = append(s.templates, issuerTemplate{prefix, suffix})
		default:
			return s, fmt.Errorf("issuer %q has %s more than once", iss, TenantPlaceholder)
		}
	}
	if len(tenants) > 0 {
		s.tenants = make(map[string]bool)
		for _, t := range tenants {
			if !isGUID(t) {
				return s, fmt.Errorf("allowed tenant %q is not a GUID (8-4-4-4-12 hex digits)", t)
			}
			s.tenants[strings.ToLower(t)] = true
		}
	}
	return s, nil
}

// accepts reports whether a token with this iss and tid claim is from an
// accepted issuer. An empty set accepts every issuer.
func (s *issuerSet) accepts(iss, tid string) bool {
	if len(s.all) == 0 {
		return true
	}
	if s.exact[iss] {
		return true
	}
	for _, t := range s.templates {
		if t.matches(iss, tid) && (s.tenants == nil || s.tenants[strings.ToLower(tid)]) {
			return true
		}
	}
	return false
}

// matches reports whether iss is the template with a canonical tenant
// GUID in place of TenantPlaceholder, and tid is that same GUID.
func (t issuerTemplate) matches(iss, tid string) bool {
	return len(iss) == len(t.prefix)+len(tid)+len(t.suffix) &&
		strings.HasPrefix(iss, t.prefix) &&
		strings.HasSuffix(iss, t.suffix) &&
		iss[len(t.prefix):len(iss)-len(t.suffix)] == tid &&
		isGUID(tid)
}

// keyIssuerFits reports whether a key whose JWK Set issuer member is
// keyIssuer may sign a token with this iss and tid: an empty keyIssuer fits
// every token; otherwise, with the token's tid in place of
// TenantPlaceholder, it must equal iss.
func keyIssuerFits(keyIssuer, iss, tid string) bool {
	if keyIssuer == "" {
		return true
	}
	if iss == "" {
		return false
	}
	for {
		before, after, found := strings.Cut(keyIssuer, TenantPlaceholder)
		if !found {
			return iss == before
		}
		if tid == "" || !strings.HasPrefix(iss, before) || !strings.HasPrefix(iss[len(before):], tid) {
			return false
		}
		iss = iss[len(before)+len(tid):]
		keyIssuer = after
	}
}

// isGUID reports whether s is a GUID in canonical form: 8-4-4-4-12
// hexadecimal digits, either case, with no braces or urn:uuid: prefix.
func isGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}
