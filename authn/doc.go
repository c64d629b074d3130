// Package authn implements Istio RequestAuthentication: where a request's
// tokens are, which jwtRule verifies them, and the identity that results.
package authn
