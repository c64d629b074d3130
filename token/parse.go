package token

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
)

// MaxSize is the longest token, in bytes, that Parse reads. Longer input
// is malformed before any of it is decoded. Entra tokens with 200 groups are
// about 10 KiB.
const MaxSize = 64 << 10

// A Token is a verified JWT: everything in it was checked by Verify.
type Token struct {
	// Raw is the compact serialization, header.payload.signature.
	Raw string
	// Header and Claims are the decoded JOSE header and claims. Numbers
	// are json.Number; other values are string, bool, nil, []any and
	// map[string]any.
	Header map[string]any
	Claims map[string]any
	// Algorithm and KeyID are the header's alg and kid ("" without one).
	Algorithm string
	KeyID     string
	// Issuer, Subject, Presenter and TenantID are the iss, sub, azp and
	// tid claims ("" when absent).
	Issuer    string
	Subject   string
	Presenter string
	TenantID  string
	// Audience is the aud claim as a list (a single string becomes one
	// element; nil when absent).
	Audience []string

	// receipt is how a Verifier accepted the token; nil until one did.
	receipt *Receipt
}

// Payload returns the token's second segment, the claims as base64url,
// exactly as received.
func (t *Token) Payload() string {
	_, rest, _ := strings.Cut(t.Raw, ".")
	payload, _, _ := strings.Cut(rest, ".")
	return payload
}

// Parsed is a token that passed every structural and type check but whose
// signature has not been verified. A Verifier verifies it without parsing
// it again.
type Parsed struct {
	// Unverified is what the token claims to be. Nothing in it may be
	// trusted or acted upon except to route the token to a verifier (by
	// its issuer, say) or to explain a rejection.
	Unverified Token

	alg          *algorithm
	signingInput string // header.payload as received
	signature    []byte
	exp          date
	nbf          date
	iat          date
}

// A date is an optional NumericDate claim, in whole seconds.
type date struct {
	sec int64
	set bool
}

// TrimInput prepares a token that a person pasted or a program piped:
// surrounding white space is removed, then a leading "Bearer" scheme, in
// any case, followed by one or more spaces.
func TrimInput(s string) string {
	s = strings.TrimSpace(s)
	const scheme = "bearer"
	if len(s) > len(scheme) && strings.EqualFold(s[:len(scheme)], scheme) && s[len(scheme)] == ' ' {
		s = strings.TrimLeft(s[len(scheme):], " ")
	}
	return s
}

// base64url is RFC 7515 §2's encoding: URL alphabet, no padding, and
// (Strict) zero bits after the last full byte, so that every token has
// exactly one spelling.
var base64url = base64.RawURLEncoding.Strict()

// Parse splits and decodes a compact JWS (RFC 7515 §7.1) and checks
// everything that needs no key: the encoding, the header (alg present and
// supported; no JWE, crit, b64, zip or nested JWT) and the types of the
// registered claims. Errors are *Error with code Malformed or
// UnsupportedAlg. Parse trusts nothing: see Parsed.
func Parse(raw string) (*Parsed, error) {
	p, payload, err := parseJWS(raw)
	if err != nil {
		return nil, err
	}
	if p.Unverified.Claims, err = parseJSONObject(string(payload)); err != nil {
		return nil, errorf(Malformed, "payload: %v", err)
	}
	if err := p.checkClaims(); err != nil {
		return nil, err
	}
	// Every structural check is done; only now may the algorithm decide.
	if p.alg = lookupAlgorithm(p.Unverified.Algorithm); p.alg == nil {
		return nil, &Error{Code: UnsupportedAlg, Detail: unsupportedAlgDetail(p.Unverified.Algorithm)}
	}
	return p, nil
}

// parseJWS does the part of Parse that any JWS needs, whatever its
// payload: it splits raw, decodes the segments and checks the header. It
// returns the decoded payload beside the Parsed.
func parseJWS(raw string) (*Parsed, []byte, error) {
	if len(raw) > MaxSize {
		return nil, nil, errorf(Malformed, "token is %d bytes; at most %d are accepted", len(raw), MaxSize)
	}
	if raw == "" {
		return nil, nil, errorf(Malformed, "token is empty")
	}
	// The base64url decoder rejects every byte outside its alphabet except
	// CR and LF, which it skips; the dots and those two are found here.
	dot1 := strings.IndexByte(raw, '.')
	dot2 := strings.IndexByte(raw[dot1+1:], '.') + dot1 + 1
	switch n := strings.Count(raw, "."); {
	case n == 4:
		return nil, nil, errorf(Malformed, "token has 5 segments: an encrypted JWE, which is never accepted")
	case n != 2:
		return nil, nil, errorf(Malformed, "token has %d segments; a signed JWT has 3 (header.payload.signature)", n+1)
	case strings.IndexByte(raw, '\r') >= 0 || strings.IndexByte(raw, '\n') >= 0:
		return nil, nil, badCharacter(raw)
	}

	headerJSON, err := decodeSegment("header", raw[:dot1])
	if err != nil {
		return nil, nil, err
	}
	payload, err := decodeSegment("payload", raw[dot1+1:dot2])
	if err != nil {
		return nil, nil, err
	}
	header, err := parseJSONObject(string(headerJSON))
	if err != nil {
		return nil, nil, errorf(Malformed, "header: %v", err)
	}
	p := &Parsed{
		Unverified:   Token{Raw: raw, Header: header},
		signingInput: raw[:dot2],
	}
	if err := p.checkHeader(); err != nil {
		return nil, nil, err
	}
	if p.signature, err = decodeSegment("signature", raw[dot2+1:]); err != nil {
		if raw[dot2+1:] == "" && lookupAlgorithm(p.Unverified.Algorithm) == nil {
			err.(*Error).Detail += " and " + unsupportedAlgDetail(p.Unverified.Algorithm)
		}
		return nil, nil, err
	}
	return p, payload, nil
}

func decodeSegment(name, seg string) ([]byte, error) {
	if seg == "" {
		return nil, errorf(Malformed, "%s segment is empty", name)
	}
	b, err := base64url.DecodeString(seg)
	if err != nil {
		if e := badCharacter(seg); e != nil {
			return nil, errorf(Malformed, "%s segment: %s", name, e.Detail)
		}
		return nil, errorf(Malformed, "%s segment is not canonical unpadded base64url", name)
	}
	return b, nil
}

// badCharacter reports the first byte of s that is not base64url or '.',
// or returns nil.
func badCharacter(s string) *Error {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return errorf(Malformed, "character %q at offset %d is not base64url", c, i)
		}
	}
	return nil
}

// checkHeader checks the JOSE header (RFC 7515 §4) and sets Algorithm and
// KeyID.
func (p *Parsed) checkHeader() error {
	h := p.Unverified.Header
	alg, ok := h["alg"]
	if !ok {
		return errorf(Malformed, "header has no alg")
	}
	if p.Unverified.Algorithm, ok = alg.(string); !ok {
		return errorf(Malformed, "header alg is %s, not a string", typeName(alg))
	}
	if kid, ok := h["kid"]; ok {
		if p.Unverified.KeyID, ok = kid.(string); !ok {
			return errorf(Malformed, "header kid is %s, not a string", typeName(kid))
		}
	}
	switch {
	case has(h, "enc"):
		return errorf(Malformed, "header has enc: an encrypted JWE, which is never accepted")
	case has(h, "crit"):
		return errorf(Malformed, "header has crit: no JWS extensions are understood")
	case has(h, "b64"):
		return errorf(Malformed, "header has b64: unencoded payloads (RFC 7797) are never accepted")
	case has(h, "zip"):
		return errorf(Malformed, "header has zip, which only JWE defines")
	}
	if cty, ok := h["cty"].(string); ok && strings.EqualFold(cty, "JWT") {
		return errorf(Malformed, "header cty is %s: nested tokens are never accepted", quote(cty))
	}
	return nil
}

// checkClaims checks the types of the registered claims idgate reads (RFC
// 7519 §4.1, Entra's tid and azp) and sets the fields they fill.
func (p *Parsed) checkClaims() error {
	c := p.Unverified.Claims
	for _, s := range []struct {
		name string
		to   *string
	}{
		{"iss", &p.Unverified.Issuer},
		{"sub", &p.Unverified.Subject},
		{"azp", &p.Unverified.Presenter},
		{"tid", &p.Unverified.TenantID},
	} {
		v, ok := c[s.name]
		if !ok {
			continue
		}
		if *s.to, ok = v.(string); !ok {
			return errorf(Malformed, "claim %s is %s, not a string", s.name, typeName(v))
		}
	}

	switch aud := c["aud"].(type) {
	case nil:
		if has(c, "aud") {
			return errorf(Malformed, "claim aud is null, not a string or an array of strings")
		}
	case string:
		p.Unverified.Audience = []string{aud}
	case []any:
		p.Unverified.Audience = make([]string, len(aud))
		for i, v := range aud {
			s, ok := v.(string)
			if !ok {
				return errorf(Malformed, "claim aud[%d] is %s, not a string", i, typeName(v))
			}
			p.Unverified.Audience[i] = s
		}
	default:
		return errorf(Malformed, "claim aud is %s, not a string or an array of strings", typeName(aud))
	}

	for _, d := range []struct {
		name string
		to   *date
	}{
		{"exp", &p.exp},
		{"nbf", &p.nbf},
		{"iat", &p.iat},
	} {
		v, ok := c[d.name]
		if !ok {
			continue
		}
		n, ok := v.(json.Number)
		if !ok {
			return errorf(Malformed, "claim %s is %s, not a number", d.name, typeName(v))
		}
		sec, err := numericDate(n)
		if err != nil {
			return errorf(Malformed, "claim %s %s is %v", d.name, quote(string(n)), err)
		}
		*d.to = date{sec: sec, set: true}
	}
	return nil
}

func has(m map[string]any, name string) bool {
	_, ok := m[name]
	return ok
}

// typeName names the JSON type of a decoded value, with an article.
func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a bool"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}
