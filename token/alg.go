package token

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"unsafe"
)

// MinRSABits is the smallest RSA modulus a key may have (RFC 7518 §3.3).
const MinRSABits = 2048

// supportedAlgs names the JWS algorithms lookupAlgorithm knows, for
// messages. MAC algorithms (HS*) are absent on purpose: keys are public.
const supportedAlgs = "RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA"

// An algorithm is one JWS "alg" (RFC 7518 §3, RFC 8037) and the key it
// needs. The key decides what may verify, never the token: a token's alg
// only selects among the algorithms its key allows.
type algorithm struct {
	name  string
	kty   string // JWK key type: "RSA", "EC" or "OKP"
	hash  crypto.Hash
	pss   bool
	curve string // JWK crv: "P-256", "P-384", "P-521" or "Ed25519"
}

var (
	rs256 = algorithm{name: "RS256", kty: "RSA", hash: crypto.SHA256}
	rs384 = algorithm{name: "RS384", kty: "RSA", hash: crypto.SHA384}
	rs512 = algorithm{name: "RS512", kty: "RSA", hash: crypto.SHA512}
	ps256 = algorithm{name: "PS256", kty: "RSA", hash: crypto.SHA256, pss: true}
	ps384 = algorithm{name: "PS384", kty: "RSA", hash: crypto.SHA384, pss: true}
	ps512 = algorithm{name: "PS512", kty: "RSA", hash: crypto.SHA512, pss: true}
	es256 = algorithm{name: "ES256", kty: "EC", hash: crypto.SHA256, curve: "P-256"}
	es384 = algorithm{name: "ES384", kty: "EC", hash: crypto.SHA384, curve: "P-384"}
	es512 = algorithm{name: "ES512", kty: "EC", hash: crypto.SHA512, curve: "P-521"}
	eddsa = algorithm{name: "EdDSA", kty: "OKP", curve: "Ed25519"}
)

// lookupAlgorithm returns the algorithm named by a token's alg, or nil.
// Names are case-sensitive (RFC 7515 §4.1.1).
func lookupAlgorithm(name string) *algorithm {
	switch name {
	case "RS256":
		return &rs256
	case "RS384":
		return &rs384
	case "RS512":
		return &rs512
	case "PS256":
		return &ps256
	case "PS384":
		return &ps384
	case "PS512":
		return &ps512
	case "ES256":
		return &es256
	case "ES384":
		return &es384
	case "ES512":
		return &es512
	case "EdDSA":
		return &eddsa
	}
	return nil
}

// unsupportedAlgDetail explains why alg, which lookupAlgorithm does not
// know, is refused.
func unsupportedAlgDetail(alg string) string {
	switch {
	case strings.EqualFold(alg, "none"):
		return fmt.Sprintf("alg %s: unsigned tokens are never accepted", quote(alg))
	case strings.HasPrefix(strings.ToUpper(alg), "HS"):
		return fmt.Sprintf("alg %s is a shared-secret MAC; only public-key signatures are verified (%s)",
			quote(alg), supportedAlgs)
	}
	return fmt.Sprintf("alg %s is not supported (supported: %s)", quote(alg), supportedAlgs)
}

// keyType returns the JWK key type and curve of a public key, or "" for a
// key idgate cannot use.
func keyType(pub crypto.PublicKey) (kty, crv string) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return "RSA", ""
	case *ecdsa.PublicKey:
		if k.Curve == nil {
			return "", ""
		}
		return "EC", k.Curve.Params().Name
	case ed25519.PublicKey:
		return "OKP", "Ed25519"
	}
	return "", ""
}

// fitsType reports whether pub is of the key type a needs (RSA, EC or
// OKP), whatever its curve.
func (a *algorithm) fitsType(pub crypto.PublicKey) bool {
	kty, _ := keyType(pub)
	return kty == a.kty
}

// refusal says why k may not verify a signature made with a, or returns ""
// when it may: the key's own alg, use and key_ops restrict it, and its type,
// curve and size must fit.
func (a *algorithm) refusal(k *Key) string {
	kty, crv := keyType(k.Public)
	switch {
	case k.Algorithm != "" && k.Algorithm != a.name:
		return fmt.Sprintf("its alg is %s", quote(k.Algorithm))
	case k.Use != "" && k.Use != "sig":
		return fmt.Sprintf("its use is %s, not \"sig\"", quote(k.Use))
	case k.Ops != nil && !slices.Contains(k.Ops, "verify"):
		return fmt.Sprintf("its key_ops %s do not include \"verify\"", quoteList(k.Ops))
	case kty == "":
		return fmt.Sprintf("its key type %T is not supported", k.Public)
	case kty != a.kty:
		return fmt.Sprintf("it is an %s key and %s needs %s", kty, a.name, a.kty)
	case a.curve != "" && crv != a.curve:
		return fmt.Sprintf("its curve is %s and %s needs %s", crv, a.name, a.curve)
	}
	if err := checkPublicKey(k.Public); err != nil {
		return err.Error()
	}
	return ""
}

// checkPublicKey rejects key material too weak or malformed to trust.
func checkPublicKey(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k.N == nil || k.N.BitLen() < MinRSABits {
			return fmt.Errorf("RSA modulus has %d bits; at least %d are required", bitLen(k.N), MinRSABits)
		}
		if k.E < 3 || k.E%2 == 0 {
			return fmt.Errorf("RSA public exponent %d is not an odd number ≥ 3", k.E)
		}
	case *ecdsa.PublicKey:
		switch {
		case k.X == nil || k.Y == nil:
			return errors.New("EC key has no point")
		case k.Curve != elliptic.P256() && k.Curve != elliptic.P384() && k.Curve != elliptic.P521():
			return errors.New("EC key is not on P-256, P-384 or P-521")
		}
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return fmt.Errorf("Ed25519 key is %d bytes, not %d", len(k), ed25519.PublicKeySize)
		}
	default:
		return fmt.Errorf("key type %T is not supported", pub)
	}
	return nil
}

func bitLen(n *big.Int) int {
	if n == nil {
		return 0
	}
	return n.BitLen()
}

// pssOptions are RFC 7518 §3.5's parameters: MGF1 with the message hash and
// a salt as long as the hash. Verification insists on that salt length.
var pssOptions = rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}

// verify checks sig over input with pub, which refusal has accepted for a.
// It returns nil or a reason the signature is wrong.
func (a *algorithm) verify(pub crypto.PublicKey, input string, sig []byte) error {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if len(sig) != k.Size() {
			return fmt.Errorf("signature is %d bytes; an %s signature with this key has %d", len(sig), a.name, k.Size())
		}
		var err error
		if a.pss {
			err = rsa.VerifyPSS(k, a.hash, a.digest(input), sig, &pssOptions)
		} else {
			err = rsa.VerifyPKCS1v15(k, a.hash, a.digest(input), sig)
		}
		if err != nil {
			return fmt.Errorf("%s verification failed", a.name)
		}
		return nil
	case *ecdsa.PublicKey:
		// RFC 7518 §3.4: R and S as fixed-length big-endian integers;
		// DER is not a JWS signature.
		size := (k.Curve.Params().BitSize + 7) / 8
		if len(sig) != 2*size {
			return fmt.Errorf("signature is %d bytes; an %s signature is %d (R‖S, not DER)", len(sig), a.name, 2*size)
		}
		r := new(big.Int).SetBytes(sig[:size])
		s := new(big.Int).SetBytes(sig[size:])
		// ecdsa.Verify rejects r or s outside [1, n-1].
		if !ecdsa.Verify(k, a.digest(input), r, s) {
			return fmt.Errorf("%s verification failed", a.name)
		}
		return nil
	case ed25519.PublicKey:
		if len(sig) != ed25519.SignatureSize {
			return fmt.Errorf("signature is %d bytes; an EdDSA signature is %d", len(sig), ed25519.SignatureSize)
		}
		if !ed25519.Verify(k, []byte(input), sig) {
			return errors.New("EdDSA verification failed")
		}
		return nil
	}
	return fmt.Errorf("key type %T is not supported", pub)
}

func (a *algorithm) digest(input string) []byte {
	// The hash functions only read their input: a view of the string
	// saves copying the signing input, most of the token.
	b := unsafe.Slice(unsafe.StringData(input), len(input))
	switch a.hash {
	case crypto.SHA256:
		d := sha256.Sum256(b)
		return d[:]
	case crypto.SHA384:
		d := sha512.Sum384(b)
		return d[:]
	default:
		d := sha512.Sum512(b)
		return d[:]
	}
}
