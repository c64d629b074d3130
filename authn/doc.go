// Package authn implements Istio RequestAuthentication: where a request's
// tokens are, which jwtRule verifies them, and the identity that results.
//
// Compile merges the jwtRules of all RequestAuthentication documents into
// an Authenticator, as istiod merges them into one Envoy jwt_authn filter.
// Authenticate applies it to one request and returns a Result: continue
// (with an identity, or anonymously), or reject with 401 or 403 and the
// token.Code that says why. The Result also carries the changes to make
// before the request goes upstream (output headers set, client copies of
// them and the original token removed) as data for the front ends, and the
// tokens found with the rules each was checked against, for explanations.
//
// The behaviour follows Istio and Envoy wherever they define it; the
// user-facing description, with the few places where idgate is stricter,
// is docs/authentication.md.
package authn
