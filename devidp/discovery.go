package devidp

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
)

// discovery serves the OpenID Connect metadata of one endpoint version,
// shaped like Entra's: the literal Entra issuer (with {tenantid} for
// common and organizations) and the dev provider's URLs for everything
// else.
func (p *Provider) discovery(version int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ref, ok := p.resolveTenant(w, r)
		if !ok {
			return
		}
		writeJSON(w, http.StatusOK, p.discoveryDocument(p.baseURL(r), ref, version))
	}
}

func (p *Provider) discoveryDocument(base string, ref tenantRef, version int) map[string]any {
	tid := tenantTemplate
	if ref.tenant != nil {
		tid = ref.tenant.ID
	}
	prefix := base + "/" + ref.name + "/oauth2/"
	doc := map[string]any{
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "client_secret_basic"},
		"response_modes_supported":              []string{"query"},
		"subject_types_supported":               []string{"pairwise"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"response_types_supported":              []string{"code"},
		"request_uri_parameter_supported":       false,
		"http_logout_supported":                 true,
		"frontchannel_logout_supported":         true,
		"tenant_region_scope":                   "NA",
		"cloud_instance_name":                   "microsoftonline.com",
		"cloud_graph_host_name":                 "graph.windows.net",
		"code_challenge_methods_supported":      []string{"plain", "S256"},
		"grant_types_supported":                 []string{"authorization_code", "refresh_token", "client_credentials", "password"},
	}
	if version == 2 {
		prefix += "v2.0/"
		doc["issuer"] = fmt.Sprintf(V2Issuer, tid)
		doc["jwks_uri"] = JWKSURI(base, ref.name)
		doc["scopes_supported"] = []string{"openid", "profile", "email", "offline_access"}
		doc["claims_supported"] = []string{"sub", "iss", "aud", "exp", "iat", "nbf", "name", "nonce", "oid", "preferred_username", "tid", "ver", "azp", "scp", "roles", "groups"}
	} else {
		doc["issuer"] = fmt.Sprintf(V1Issuer, tid)
		doc["jwks_uri"] = JWKSURIv1(base, ref.name)
		doc["scopes_supported"] = []string{"openid"}
		doc["claims_supported"] = []string{"sub", "iss", "aud", "exp", "iat", "nbf", "name", "nonce", "oid", "upn", "unique_name", "tid", "ver", "appid", "scp", "roles", "groups"}
	}
	doc["authorization_endpoint"] = prefix + "authorize"
	doc["token_endpoint"] = prefix + "token"
	doc["end_session_endpoint"] = prefix + "logout"
	return doc
}

// jwks serves the published keys. The v2 endpoint gives each key an
// "issuer" member, as Entra does (a template for common and
// organizations); the v1 endpoint does not.
func (p *Provider) jwks(version int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ref, ok := p.resolveTenant(w, r)
		if !ok {
			return
		}
		issuer := ""
		if version == 2 {
			tid := tenantTemplate
			if ref.tenant != nil {
				tid = ref.tenant.ID
			}
			issuer = fmt.Sprintf(V2Issuer, tid)
		}
		data, err := p.keys.jwks(issuer)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.Write(data)
	}
}

// index lists the tenants and their endpoints, for people.
func (p *Provider) index(w http.ResponseWriter, r *http.Request) {
	base := p.baseURL(r)
	var b strings.Builder
	b.WriteString("idgate dev identity provider (for development only)\n\n")
	for _, t := range p.dir.Tenants {
		fmt.Fprintf(&b, "tenant %s (%s)\n", t.ID, t.Domain)
		fmt.Fprintf(&b, "  v2 discovery  %s/%s/v2.0/.well-known/openid-configuration\n", base, t.ID)
		fmt.Fprintf(&b, "  v1 discovery  %s/%s/.well-known/openid-configuration\n", base, t.ID)
		fmt.Fprintf(&b, "  v2 issuer     %s\n", fmt.Sprintf(V2Issuer, t.ID))
		fmt.Fprintf(&b, "  v1 issuer     %s\n", fmt.Sprintf(V1Issuer, t.ID))
		users := make([]string, 0, len(t.Users))
		for _, u := range t.Users {
			users = append(users, u.Name)
		}
		sort.Strings(users)
		fmt.Fprintf(&b, "  users         %s\n", strings.Join(users, ", "))
		for _, a := range t.Apps {
			fmt.Fprintf(&b, "  app %-12s client id %s", a.Name, a.ClientID)
			if a.AppIDURI != "" {
				fmt.Fprintf(&b, ", App ID URI %s, v%d tokens", a.AppIDURI, a.version())
			}
			b.WriteString("\n")
		}
		b.WriteString("\n")
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write([]byte(b.String()))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	w.Write(append(data, '\n'))
}
