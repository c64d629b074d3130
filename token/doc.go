// Package token parses and verifies signed JSON Web Tokens (compact JWS,
// RFC 7515 and RFC 7519) the way idgate's gateway and its verify command
// do, with the stable rejection codes of the verify contract.
//
// Verification fails closed: a token is valid only when its encoding is
// canonical, its header and registered claims have the right types, a
// configured key that allows its algorithm verifies its signature, and its
// issuer, times and audience are accepted. Claims are never trusted before
// the signature is verified. Keys come only from a KeySource; keys, URLs or
// certificates in a token's header are never used.
package token
