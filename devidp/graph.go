package devidp

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/idgate/idgate/token"
)

// graphReadRoles are the application permissions that may read group
// memberships.
var graphReadRoles = []string{"GroupMember.Read.All", "Directory.Read.All"}

// memberObjects serves a Graph-like
// POST /graph/v1.0/{users|servicePrincipals}/{id}/getMemberObjects: the
// object IDs of the groups the object is a member of. It needs an app-only
// token for Microsoft Graph from the object's tenant, signed by this
// provider, with GroupMember.Read.All or Directory.Read.All.
func (p *Provider) memberObjects(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tid, err := p.graphCaller(r)
		if err != nil {
			var ge *graphError
			errors.As(err, &ge)
			writeGraphError(w, ge)
			return
		}
		var body struct {
			SecurityEnabledOnly *bool `json:"securityEnabledOnly"`
		}
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxJSONSize))
		if err := dec.Decode(&body); err != nil || body.SecurityEnabledOnly == nil {
			writeGraphError(w, &graphError{http.StatusBadRequest, "Request_BadRequest", "The body must be a JSON object with the boolean securityEnabledOnly."})
			return
		}
		t := p.dir.tenant(tid)
		id := r.PathValue("id")
		var groups []string
		switch kind {
		case "users":
			u := t.user(id)
			if u == nil || !strings.EqualFold(u.OID, id) && !strings.EqualFold(u.upn(t), id) {
				writeGraphError(w, &graphError{http.StatusNotFound, "Request_ResourceNotFound", fmt.Sprintf("Resource '%s' does not exist or one of its queried reference-property objects are not present.", clipped(id))})
				return
			}
			groups = u.groupIDs(t)
		case "servicePrincipals":
			found := false
			for _, a := range t.Apps {
				found = found || strings.EqualFold(a.ObjectID, id)
			}
			if !found {
				writeGraphError(w, &graphError{http.StatusNotFound, "Request_ResourceNotFound", fmt.Sprintf("Resource '%s' does not exist or one of its queried reference-property objects are not present.", clipped(id))})
				return
			}
		}
		if groups == nil {
			groups = []string{}
		}
		writeJSON(w, http.StatusOK, map[string]any{
			"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Collection(Edm.String)",
			"value":          groups,
		})
	}
}

// graphCaller verifies the request's bearer token as Microsoft Graph
// would and returns the caller's tenant ID.
func (p *Provider) graphCaller(r *http.Request) (string, error) {
	scheme, raw, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, "Bearer") || raw == "" {
		return "", &graphError{http.StatusUnauthorized, "InvalidAuthenticationToken", "Access token is empty."}
	}
	var keys token.StaticKeys
	for _, k := range p.keys.published() {
		keys = append(keys, k.PublicKey())
	}
	v, err := token.NewVerifier(token.Config{
		Issuers:   []string{fmt.Sprintf(V1Issuer, token.TenantPlaceholder), fmt.Sprintf(V2Issuer, token.TenantPlaceholder)},
		Audiences: []string{GraphAppIDURI, GraphClientID},
		Keys:      keys,
		Now:       p.opts.Now,
	})
	if err != nil {
		return "", err
	}
	tok, err := v.Verify(r.Context(), raw)
	if err != nil {
		return "", &graphError{http.StatusUnauthorized, "InvalidAuthenticationToken", "Access token validation failure: " + err.Error()}
	}
	if tok.Claims["idtyp"] != "app" {
		return "", &graphError{http.StatusForbidden, "Authorization_RequestDenied", "The dev Graph endpoint answers app-only tokens (client_credentials) only."}
	}
	roles, _ := tok.Claims["roles"].([]any)
	if !slices.ContainsFunc(roles, func(r any) bool { s, _ := r.(string); return slices.Contains(graphReadRoles, s) }) {
		return "", &graphError{http.StatusForbidden, "Authorization_RequestDenied", "Insufficient privileges to complete the operation: the app needs GroupMember.Read.All or Directory.Read.All."}
	}
	if p.dir.tenant(tok.TenantID) == nil {
		return "", &graphError{http.StatusUnauthorized, "InvalidAuthenticationToken", "The token's tenant is not in this directory."}
	}
	return tok.TenantID, nil
}

// graphError is an error response shaped like Microsoft Graph's.
type graphError struct {
	status int
	code   string
	msg    string
}

func (e *graphError) Error() string { return e.code + ": " + e.msg }

func writeGraphError(w http.ResponseWriter, e *graphError) {
	if e == nil {
		e = &graphError{http.StatusInternalServerError, "generalException", "internal error"}
	}
	if e.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
	}
	writeJSON(w, e.status, map[string]any{"error": map[string]any{"code": e.code, "message": e.msg}})
}
