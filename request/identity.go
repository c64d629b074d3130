package request

// Identity is who a request proved to be with a verified JWT: Istio's
// request.auth.* attributes. A nil *Identity is an anonymous request.
type Identity struct {
	// Issuer and Subject are the verified "iss" and "sub".
	Issuer  string
	Subject string
	// Audiences are the verified "aud" values (request.auth.audiences).
	Audiences []string
	// Presenter is the verified "azp" (request.auth.presenter).
	Presenter string
	// Claims are the verified claims (request.auth.claims), with numbers as
	// json.Number. Claims that Istio splits on spaces ("scope",
	// "permission" and the rule's spaceDelimitedClaims) hold []any of
	// strings here, as Envoy hands them to authorization.
	Claims Claims
	// Fingerprint identifies the token without revealing it
	// (audit.Fingerprint).
	Fingerprint string
}

// Principal returns "<iss>/<sub>" (request.auth.principal).
func (id *Identity) Principal() string { return id.Issuer + "/" + id.Subject }
