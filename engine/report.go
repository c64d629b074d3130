package engine

import (
	"fmt"
	"strings"
)

// String explains the decision for people: the outcome, what
// authentication found and decided, and (when the decision was made by
// Explain) how every AuthorizationPolicy matched or failed.
func (d Decision) String() string {
	var b strings.Builder
	verdict := "denied"
	if d.Allowed {
		verdict = "allowed"
	}
	fmt.Fprintf(&b, "%d %s (%s)", d.Status, verdict, d.Reason)
	if d.Policy != "" {
		fmt.Fprintf(&b, " by %s", d.Policy)
		if d.Rule >= 0 {
			fmt.Fprintf(&b, " rule %d", d.Rule)
		}
	}
	b.WriteByte('\n')
	if d.Detail != "" {
		fmt.Fprintf(&b, "  %s\n", d.Detail)
	}

	b.WriteString("authentication:\n")
	a := d.Authn
	switch {
	case a.Preflight:
		b.WriteString("  CORS preflight: tokens are not looked at\n")
	case len(a.Tokens) == 0 && d.Identity != nil:
		b.WriteString("  a token verified before, answered from the verified-token cache (explain checks it in full)\n")
	case len(a.Tokens) == 0:
		b.WriteString("  no token at any location a jwtRule reads: the request is anonymous\n")
	}
	for _, t := range a.Tokens {
		fmt.Fprintf(&b, "  token in %s", t.Location)
		if t.UnverifiedIssuer != "" {
			fmt.Fprintf(&b, ", unverified iss %q", t.UnverifiedIssuer)
		}
		if len(t.UnverifiedAudiences) > 0 {
			fmt.Fprintf(&b, ", unverified aud %q", t.UnverifiedAudiences)
		}
		b.WriteByte('\n')
		if len(t.Checks) == 0 {
			b.WriteString("    no jwtRule accepts its issuer\n")
		}
		for _, c := range t.Checks {
			fmt.Fprintf(&b, "    %s jwtRule %d (issuer %q): ", c.Rule.Policy, c.Rule.Index, c.Rule.Issuer)
			if c.Err == nil {
				b.WriteString("verified\n")
			} else {
				fmt.Fprintf(&b, "%s\n", c.Err)
			}
		}
	}
	if a.Err != nil && len(a.Tokens) > 0 {
		fmt.Fprintf(&b, "  rejected: %s\n", a.Err)
	}
	if id := d.Identity; id != nil {
		fmt.Fprintf(&b, "  identity: principal %q", id.Principal())
		if len(id.Audiences) > 0 {
			fmt.Fprintf(&b, ", audiences %q", id.Audiences)
		}
		if id.Presenter != "" {
			fmt.Fprintf(&b, ", presenter %q", id.Presenter)
		}
		b.WriteByte('\n')
		names := make([]string, 0, id.Claims.Len())
		for k := range id.Claims.All() {
			names = append(names, k)
		}
		fmt.Fprintf(&b, "  claims: %s\n", strings.Join(names, ", "))
	}
	if d.Trace != nil && (d.Authn.Status == 200 || d.Authz.Custom.Matched()) {
		b.WriteString("authorization:\n")
		for _, line := range strings.Split(strings.TrimRight(d.Trace.String(), "\n"), "\n") {
			b.WriteString("  ")
			b.WriteString(line)
			b.WriteByte('\n')
		}
	}
	return b.String()
}
