package token

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	jose "github.com/go-jose/go-jose/v4"
)

// Limits on a JWK Set. Entra publishes about ten keys of 2 KiB each.
const (
	// MaxJWKSSize is the largest JWK Set, in bytes, ParseJWKS reads.
	MaxJWKSSize = 1 << 20
	// MaxJWKSKeys is the most keys a JWK Set may hold.
	MaxJWKSKeys = 100
)

// A SkippedKey is a member of a JWK Set that ParseJWKSReport left out.
type SkippedKey struct {
	// Index is the key's position in the set's keys array, from 0.
	Index int
	// ID is its kid, if it has one.
	ID string
	// Reason says why it was left out.
	Reason string
}

// String describes the skipped key in one line.
func (s SkippedKey) String() string {
	if s.ID == "" {
		return fmt.Sprintf("key #%d: %s", s.Index+1, s.Reason)
	}
	return fmt.Sprintf("key #%d (kid %s): %s", s.Index+1, quote(s.ID), s.Reason)
}

// ParseJWKS parses a JWK Set (RFC 7517 §5) into keys. It is strict about the
// JSON it accepts and bounded in the size and number of keys it reads.
// Members of the set that idgate cannot use are left out, as ParseJWKSReport
// describes.
func ParseJWKS(data []byte) ([]Key, error) {
	keys, _, err := ParseJWKSReport(data)
	return keys, err
}

// ParseJWKSReport parses a JWK Set like ParseJWKS and also says which of its
// members it left out, so that a caller can log them.
//
// The whole set is an error when it is larger than MaxJWKSSize, is not one
// JSON object (duplicate member names and invalid UTF-8 included), has no
// "keys" array, has more than MaxJWKSKeys keys, or has no key that can verify
// a signature: a set that fails to parse must never replace a good one.
//
// A member is left out when it is not an object; its kty is not RSA, EC or
// OKP (symmetric "oct" keys are never used: keys are public); its kid, alg,
// use, key_ops or issuer has the wrong type; its key material is invalid
// (an EC point off its curve, an x5c certificate whose key differs from the
// JWK's); or its key is weak (RSA under MinRSABits bits, an even or small
// exponent). Private members are ignored: only the public key is kept.
// Members whose use or key_ops forbid verifying are kept, so that a token
// naming them is told why they may not verify it, but do not count as keys
// that can.
func ParseJWKSReport(data []byte) ([]Key, []SkippedKey, error) {
	if len(data) > MaxJWKSSize {
		return nil, nil, fmt.Errorf("token: JWKS is %d bytes; at most %d are accepted", len(data), MaxJWKSSize)
	}
	set, err := parseJSONObject(string(data))
	if err != nil {
		return nil, nil, fmt.Errorf("token: JWKS is not a JSON object: %w", err)
	}
	members, ok := set["keys"].([]any)
	if !ok {
		if !has(set, "keys") {
			return nil, nil, errors.New(`token: JWKS has no "keys" member`)
		}
		return nil, nil, fmt.Errorf(`token: JWKS "keys" is %s, not an array`, typeName(set["keys"]))
	}
	if len(members) > MaxJWKSKeys {
		return nil, nil, fmt.Errorf("token: JWKS has %d keys; at most %d are accepted", len(members), MaxJWKSKeys)
	}
	var (
		keys    []Key
		skipped []SkippedKey
		usable  int
	)
	for i, m := range members {
		obj, ok := m.(map[string]any)
		if !ok {
			skipped = append(skipped, SkippedKey{Index: i, Reason: fmt.Sprintf("is %s, not an object", typeName(m))})
			continue
		}
		k, err := parseJWK(obj)
		if err != nil {
			kid, _ := obj["kid"].(string)
			skipped = append(skipped, SkippedKey{Index: i, ID: kid, Reason: err.Error()})
			continue
		}
		keys = append(keys, k)
		if (k.Use == "" || k.Use == "sig") && (k.Ops == nil || slices.Contains(k.Ops, "verify")) {
			usable++
		}
	}
	if usable == 0 {
		msg := "token: JWKS has no key that can verify signatures"
		if len(members) == 0 {
			msg = "token: JWKS has no keys"
		}
		for i, s := range skipped {
			if i == 3 {
				msg += fmt.Sprintf("; and %d more", len(skipped)-i)
				break
			}
			msg += "; " + s.String()
		}
		if len(keys) > 0 {
			msg += fmt.Sprintf("; %d keys are for other uses (use or key_ops)", len(keys))
		}
		return nil, skipped, errors.New(msg)
	}
	return keys, skipped, nil
}

// jwkPublicMembers are the members that make up a public key and its
// certificate; only these are handed to the JWK decoder.
var jwkPublicMembers = []string{"kty", "crv", "n", "e", "x", "y", "x5c", "x5t", "x5t#S256"}

// parseJWK decodes one member of a JWK Set.
func parseJWK(obj map[string]any) (Key, error) {
	var k Key
	for _, f := range []struct {
		name string
		to   *string
	}{
		{"kid", &k.ID},
		{"alg", &k.Algorithm},
		{"use", &k.Use},
		{"issuer", &k.Issuer},
	} {
		if v, ok := obj[f.name]; ok {
			if *f.to, ok = v.(string); !ok {
				return k, fmt.Errorf("%s is %s, not a string", f.name, typeName(v))
			}
		}
	}
	if v, ok := obj["key_ops"]; ok {
		list, ok := v.([]any)
		if !ok {
			return k, fmt.Errorf("key_ops is %s, not an array", typeName(v))
		}
		k.Ops = make([]string, len(list))
		for i, op := range list {
			if k.Ops[i], ok = op.(string); !ok {
				return k, fmt.Errorf("key_ops[%d] is %s, not a string", i, typeName(op))
			}
		}
	}

	kty := obj["kty"]
	switch kty {
	case "RSA", "EC", "OKP":
	case "oct":
		return k, errors.New(`kty "oct" is a symmetric key; only public keys are used`)
	case nil:
		return k, errors.New("kty is missing")
	default:
		if s, ok := kty.(string); ok {
			return k, fmt.Errorf("kty %s is not supported", quote(s))
		}
		return k, fmt.Errorf("kty is %s, not a string", typeName(kty))
	}

	// The JWK decoder (encoding/json underneath) matches member names
	// without regard to case and keeps the last of duplicates; hand it only
	// the public members, spelled exactly, from the strictly parsed object.
	public := make(map[string]any, len(jwkPublicMembers))
	for _, name := range jwkPublicMembers {
		if v, ok := obj[name]; ok {
			public[name] = v
		}
	}
	if kty == "EC" {
		padCoordinates(public)
	}
	data, err := json.Marshal(public)
	if err != nil {
		return k, err
	}
	var jwk jose.JSONWebKey
	if err := jwk.UnmarshalJSON(data); err != nil {
		return k, fmt.Errorf("invalid key material: %v", err)
	}
	if kty, _ := keyType(jwk.Key); kty == "" {
		return k, fmt.Errorf("key type %T is not supported", jwk.Key)
	}
	k.Public = jwk.Key
	if err := checkPublicKey(k.Public); err != nil {
		return k, err
	}
	return k, nil
}

// padCoordinates restores the leading zero bytes that some publishers drop
// from an EC key's x and y (RFC 7518 §6.2.1.2 wants the full size; Envoy
// accepts short ones). The point is still checked to be on the curve.
func padCoordinates(jwk map[string]any) {
	var size int
	switch jwk["crv"] {
	case "P-256":
		size = 32
	case "P-384":
		size = 48
	case "P-521":
		size = 66
	default:
		return
	}
	for _, name := range []string{"x", "y"} {
		s, ok := jwk[name].(string)
		if !ok {
			continue
		}
		b, err := base64url.DecodeString(s)
		if err != nil || len(b) >= size {
			continue
		}
		jwk[name] = base64url.EncodeToString(append(make([]byte, size-len(b)), b...))
	}
}
