package keyset

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/idgate/idgate/token"
)

// templateTenant is the tenant-independent path segment whose discovery
// document publishes the issuer with [token.TenantPlaceholder]. Entra's
// "common" and "organizations" documents both do; "organizations" is the
// narrower one (work and school accounts).
const templateTenant = "organizations"

// wellKnown is appended to an issuer to find its discovery document
// (OpenID Connect Discovery 1.0 §4).
const wellKnown = "/.well-known/openid-configuration"

// maxBody caps every document read: discovery documents, JWK Sets and
// files. Entra's key sets are a few tens of KiB.
const maxBody = 1 << 20

// Discovery is what key retrieval uses of an OpenID Provider's discovery
// document (OpenID Connect Discovery 1.0 §3).
type Discovery struct {
	// Issuer is the document's "issuer", exactly as published; Entra's
	// tenant-independent documents publish one containing
	// [token.TenantPlaceholder].
	Issuer string
	// JWKSURI is the document's "jwks_uri": an absolute https URL, or
	// http on a loopback host.
	JWKSURI string
}

// ParseDiscovery parses a discovery document. The document must be a
// single JSON object of valid UTF-8, no larger than 1 MiB, with "issuer" and
// "jwks_uri" each present once (names compared exactly) as non-empty
// strings; "jwks_uri" must be a URL keys may be fetched from (see Config).
// Other members are ignored.
func ParseDiscovery(data []byte) (Discovery, error) {
	var d Discovery
	if len(data) > maxBody {
		return d, fmt.Errorf("discovery document is larger than %d bytes", maxBody)
	}
	if !utf8.Valid(data) {
		return d, errors.New("discovery document is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil {
		return d, fmt.Errorf("discovery document is not JSON: %w", err)
	} else if tok != json.Delim('{') {
		return d, errors.New("discovery document is not a JSON object")
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return d, fmt.Errorf("discovery document is not JSON: %w", err)
		}
		name, _ := tok.(string) // object keys are always strings
		var dst *string
		switch name {
		case "issuer":
			dst = &d.Issuer
		case "jwks_uri":
			dst = &d.JWKSURI
		}
		if dst == nil {
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return d, fmt.Errorf("discovery document is not JSON: %w", err)
			}
			continue
		}
		if seen[name] {
			return d, fmt.Errorf("discovery document has %q more than once", name)
		}
		seen[name] = true
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return d, fmt.Errorf("discovery document is not JSON: %w", err)
		}
		if err := json.Unmarshal(raw, dst); err != nil || len(raw) == 0 || raw[0] != '"' {
			return d, fmt.Errorf("discovery document %q is not a string", name)
		}
		if *dst == "" {
			return d, fmt.Errorf("discovery document %q is empty", name)
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return d, fmt.Errorf("discovery document is not JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return d, errors.New("discovery document has data after its JSON object")
	}
	if d.Issuer == "" {
		return d, errors.New(`discovery document has no "issuer"`)
	}
	if d.JWKSURI == "" {
		return d, errors.New(`discovery document has no "jwks_uri"`)
	}
	if err := checkURL(d.JWKSURI); err != nil {
		return d, fmt.Errorf(`discovery document "jwks_uri": %w`, err)
	}
	return d, nil
}

// DiscoveryURL returns the URL of issuer's discovery document: issuer
// without a trailing "/" followed by "/.well-known/openid-configuration".
//
// An Entra multi-tenant issuer, one whose path has [token.TenantPlaceholder]
// ("{tenantid}") as a whole segment, is looked up at the tenant-independent
// "organizations" document of the same host, which publishes that template
// as its issuer:
//
//	https://login.microsoftonline.com/{tenantid}/v2.0
//	→ https://login.microsoftonline.com/organizations/v2.0/.well-known/openid-configuration
//
// The host is never changed, so sovereign clouds work the same way. The
// issuer must be an absolute https URL (http only on a loopback host)
// without query, fragment or credentials, and may hold the template at
// most once and no other brace.
func DiscoveryURL(issuer string) (string, error) {
	n := strings.Count(issuer, token.TenantPlaceholder)
	rest := strings.Replace(issuer, token.TenantPlaceholder, "", 1)
	if n > 1 || strings.ContainsAny(rest, "{}") {
		return "", fmt.Errorf("issuer %q: braces are only allowed as one %s path segment", issuer, token.TenantPlaceholder)
	}
	resolved := strings.Replace(issuer, token.TenantPlaceholder, templateTenant, 1)
	if err := checkURL(resolved); err != nil {
		return "", fmt.Errorf("issuer %q: %w", issuer, err)
	}
	u, _ := url.Parse(resolved) // checked above
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(issuer, "#") {
		return "", fmt.Errorf("issuer %q: an issuer has no query or fragment", issuer)
	}
	if n == 1 && !templateIsSegment(issuer) {
		return "", fmt.Errorf("issuer %q: %s must be a whole path segment", issuer, token.TenantPlaceholder)
	}
	return strings.TrimSuffix(resolved, "/") + wellKnown, nil
}

// templateIsSegment reports whether issuer's tenant placeholder is a whole
// segment of its path (not part of a segment, not in the host).
func templateIsSegment(issuer string) bool {
	prefix, suffix, _ := strings.Cut(issuer, token.TenantPlaceholder)
	if !strings.HasSuffix(prefix, "/") || (suffix != "" && !strings.HasPrefix(suffix, "/")) {
		return false
	}
	u, err := url.Parse(prefix)
	return err == nil && u.Host != "" && u.Path != ""
}

// checkIssuer reports whether a discovery document's published issuer
// fits the configured one: they must be equal, character for character.
// Entra's tenant-independent documents publish the template form (with
// token.TenantPlaceholder), which only fits an issuer configured so.
func checkIssuer(configured, published, docURL string) error {
	if configured == published {
		return nil
	}
	err := fmt.Errorf("keyset: %s publishes issuer %q, not the configured %q", docURL, published, configured)
	if strings.Contains(published, token.TenantPlaceholder) {
		err = fmt.Errorf("%w; configure issuer %q to accept tokens of any tenant, or a tenant's own issuer", err, published)
	}
	return err
}

// checkURL reports whether keys may be fetched from raw: an absolute
// https URL with a host and no credentials; plain http only when the host
// is a loopback name or address (a local identity provider or a test).
func checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("not a URL: %w", err)
	}
	switch {
	case !u.IsAbs():
		return fmt.Errorf("%q is not an absolute URL", raw)
	case u.Scheme != "https" && u.Scheme != "http":
		return fmt.Errorf("%q: scheme %q is not https", raw, u.Scheme)
	case u.Host == "" || u.Opaque != "":
		return fmt.Errorf("%q is not an absolute URL with a host", raw)
	case u.User != nil:
		return fmt.Errorf("%q: credentials in a URL are not allowed", u.Redacted())
	case u.Scheme == "http" && !isLoopback(u.Hostname()):
		return fmt.Errorf("%q: http is only allowed for loopback hosts; use https", raw)
	}
	return nil
}

// isLoopback reports whether host is "localhost" or a loopback address.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
