package devidp

import (
	"fmt"

	"github.com/idgate/idgate/policy"
)

// PointJWKSAt makes the jwtRules of docs that trust one of the
// directory's tenants fetch their keys from the dev provider at base:
// a rule whose issuer is a tenant's v2 issuer gets the tenant's v2 keys
// URL, one with the v1 issuer the v1 keys URL. Nothing else changes, so
// the policies stay those written for Entra ID. It returns how many rules
// it changed.
func (d *Directory) PointJWKSAt(docs []*policy.Document, base string) int {
	n := 0
	for _, doc := range docs {
		ra := doc.RequestAuthentication
		if ra == nil {
			continue
		}
		for _, r := range ra.GetJwtRules() {
			for _, t := range d.Tenants {
				switch r.GetIssuer() {
				case fmt.Sprintf(V2Issuer, t.ID):
					r.JwksUri, r.Jwks = JWKSURI(base, t.ID), ""
					n++
				case fmt.Sprintf(V1Issuer, t.ID):
					r.JwksUri, r.Jwks = JWKSURIv1(base, t.ID), ""
					n++
				}
			}
		}
	}
	return n
}
