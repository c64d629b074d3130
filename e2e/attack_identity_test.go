package e2e

import (
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
)

// Clients cannot claim an identity: not with the headers idgate sets, not
// with forwarding headers against an address rule, not with a second
// token or a token spelled oddly.
func TestAttackIdentityForgery(t *testing.T) {
	g := startGateway(t, gatewayOptions{})
	valid := g.token(nil)
	other := g.token(map[string]any{"sub": "mallory", "oid": "oid-mallory"})
	payload := strings.Split(valid, ".")[1]
	bearer := "Authorization: Bearer " + valid

	// identity checks what the upstream was told about who is calling.
	identity := func(oid, jwtPayload string) func(*testing.T, seen) {
		return func(t *testing.T, s seen) {
			t.Helper()
			if got := s.Header.Values("X-User-Oid"); strings.Join(got, ",") != oid {
				t.Errorf("upstream X-User-Oid %q, want %q", got, oid)
			}
			if got := s.Header.Values("X-Jwt-Payload"); strings.Join(got, ",") != jwtPayload {
				t.Errorf("upstream X-Jwt-Payload %q, want %q", got, jwtPayload)
			}
			if got := s.Header.Get("Authorization"); got != "" {
				t.Errorf("upstream Authorization %q, want the token removed", got)
			}
			for name := range s.Header {
				if n := strings.ToLower(strings.ReplaceAll(name, "_", "-")); (n == "x-user-oid" || n == "x-jwt-payload") && name != "X-User-Oid" && name != "X-Jwt-Payload" {
					t.Errorf("upstream got %q: %q, a spelling of an identity header the client chose", name, s.Header[name])
				}
			}
		}
	}
	forged := base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"https://issuer.example","sub":"admin","oid":"oid-admin"}`))

	g.run(t, []attack{
		{name: "identity headers sent with a valid token are replaced",
			target: "/api/orders", headers: []string{bearer, "X-User-Oid: oid-admin", "X-Jwt-Payload: " + forged},
			status: 200, seen: identity(enginetest_OID, payload)},
		{name: "identity headers in lower case and repeated",
			target: "/api/orders", headers: []string{bearer, "x-user-oid: oid-admin", "x-user-oid: oid-root", "x-jwt-payload: " + forged},
			status: 200, seen: identity(enginetest_OID, payload)},
		{name: "identity headers sent anonymously are removed",
			target: "/public/logo.png", headers: []string{"X-User-Oid: oid-admin", "X-Jwt-Payload: " + forged},
			status: 200, seen: identity("", "")},
		{name: "identity headers spelled with underscores are removed",
			target: "/public/logo.png", headers: []string{"X_User_Oid: oid-admin", "x_jwt_payload: " + forged},
			status: 200, seen: identity("", ""), proxyOnly: true},
		{name: "identity headers do not authenticate",
			target: "/api/orders", headers: []string{"X-User-Oid: oid-alice", "X-Jwt-Payload: " + payload},
			status: 403},

		{name: "X-Forwarded-For claiming loopback",
			target: "/local/debug", from: "127.0.0.2", headers: []string{"X-Forwarded-For: 127.0.0.1"},
			status: 403},
		{name: "Forwarded claiming loopback",
			target: "/local/debug", from: "127.0.0.2", headers: []string{"Forwarded: for=127.0.0.1"},
			status: 403},
		{name: "X-Real-IP claiming loopback",
			target: "/local/debug", from: "127.0.0.2", headers: []string{"X-Real-IP: 127.0.0.1"},
			status: 403},
		{name: "x-envoy-external-address claiming loopback",
			target: "/local/debug", from: "127.0.0.2", headers: []string{"X-Envoy-External-Address: 127.0.0.1"},
			status: 403},
		{name: "every forwarding header at once",
			target: "/local/debug", from: "127.0.0.2", headers: []string{"X-Forwarded-For: 127.0.0.1", "X-Forwarded-For: 127.0.0.1, 127.0.0.1", "Forwarded: for=127.0.0.1", "X-Real-IP: 127.0.0.1", "X-Envoy-External-Address: 127.0.0.1"},
			status: 403},
		{name: "the real loopback client",
			target: "/local/debug", status: 200},

		{name: "two Authorization headers, different tokens",
			target: "/api/orders", headers: []string{bearer, "Authorization: Bearer " + other},
			status: 401},
		{name: "two Authorization headers, one garbage",
			target: "/api/orders", headers: []string{bearer, "Authorization: Bearer garbage"},
			status: 401},
		{name: "a valid and a Basic Authorization header",
			target: "/api/orders", headers: []string{"Authorization: Basic YWxpY2U6cHc=", bearer},
			status: 200, seen: identity(enginetest_OID, payload)},
		{name: "tokens in the header and the query differ",
			target: "/api/orders?access_token=" + other, headers: []string{bearer},
			status: 401},
		{name: "the same token in the header and the query",
			target: "/api/orders?access_token=" + valid + "&page=2", headers: []string{bearer},
			status: 200, upstream: "/api/orders?page=2", seen: identity(enginetest_OID, payload)},
		{name: "two different tokens in the query",
			target: "/api/orders?access_token=" + valid + "&access_token=" + other,
			status: 200, upstream: "/api/orders", seen: identity(enginetest_OID, payload)},
		{name: "a garbage query token next to a valid header token",
			target: "/api/orders?access_token=garbage", headers: []string{bearer},
			status: 401},

		{name: "bearer in lower case",
			target: "/api/orders", headers: []string{"Authorization: bearer " + valid}, status: 200},
		{name: "BEARER in upper case",
			target: "/api/orders", headers: []string{"Authorization: BEARER " + valid}, status: 200},
		{name: "Bearer with two spaces",
			target: "/api/orders", headers: []string{"Authorization: Bearer  " + valid}, status: 200},
		{name: "Bearer with a tab is no token",
			target: "/api/orders", headers: []string{"Authorization: Bearer\t" + valid}, status: 403},
		{name: "Bearer without a space is no token",
			target: "/api/orders", headers: []string{"Authorization: Bearer" + valid}, status: 403},
		{name: "Bearer and nothing",
			target: "/api/orders", headers: []string{"Authorization: Bearer "}, status: 403},
		{name: "a token with trailing junk",
			target: "/api/orders", headers: []string{"Authorization: Bearer " + valid + " junk"}, status: 401},
		{name: "two tokens in one header",
			target: "/api/orders", headers: []string{"Authorization: Bearer " + valid + ", Bearer " + other}, status: 401},
		{name: "a token with a trailing dot",
			target: "/api/orders", headers: []string{"Authorization: Bearer " + valid + "."}, status: 401},
		{name: "a token without its signature",
			target: "/api/orders", headers: []string{"Authorization: Bearer " + valid[:strings.LastIndexByte(valid, '.')+1]}, status: 401},
		{name: "Basic is no token",
			target: "/api/orders", headers: []string{"Authorization: Basic " + valid}, status: 403},
	})
}

// enginetest_OID is the oid of g.token's tokens.
const enginetest_OID = "oid-alice"

var _ = http.StatusOK
