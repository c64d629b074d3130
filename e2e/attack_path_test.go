package e2e

import (
	"testing"
)

// Path, host and method tricks against path rules: a DENY on /api/admin*
// and on DELETE, an ALLOW that needs a token for /api/*, and anonymous
// GETs on orders.example's /public/*. What the upstream receives is
// exactly the path that was authorized.
func TestAttackPathConfusion(t *testing.T) {
	g := startGateway(t, gatewayOptions{})
	bearer := "Authorization: Bearer " + g.token(nil)
	tok := []string{bearer}
	g.run(t, []attack{
		{name: "plain denied path", target: "/api/admin", headers: tok, status: 403},
		{name: "dot-dot", target: "/api/x/../admin", headers: tok, status: 403},
		{name: "escaped dot-dot", target: "/api/x/%2e%2e/admin", headers: tok, status: 403},
		{name: "escaped dot-dot upper case", target: "/api/x/%2E%2E/admin", headers: tok, status: 403},
		{name: "half-escaped dot-dot", target: "/api/x/.%2e/admin", headers: tok, status: 403},
		{name: "dot segment", target: "/api/./admin", headers: tok, status: 403},
		{name: "escaped letter", target: "/api/%61dmin", headers: tok, status: 403},
		{name: "escaped letters everywhere", target: "/%61%70%69/%41dmin/%75sers", headers: tok, status: 200, upstream: "/api/Admin/users"},
		{name: "backslash", target: `/api\admin`, headers: tok, status: 403},
		{name: "backslash dot-dot", target: `/api/x\..\admin`, headers: tok, status: 403},
		{name: "dot-dot above the root", target: "/../../api/admin", headers: tok, status: 403},
		{name: "trailing escaped slash", target: "/api/admin%2f", headers: tok, status: 403},
		{name: "path parameter on the denied path", target: "/api/admin;x=y", headers: tok, status: 403},
		{name: "path parameter before the denied segment", target: "/api;x=y/admin", headers: tok, status: 403},
		{name: "leading double slash", target: "//api/admin", headers: tok, status: 403},
		{name: "NUL", target: "/api/admin%00", headers: tok, status: 400},
		{name: "NUL before the denied segment", target: "/api/%00/../admin", headers: tok, status: 400},
		{name: "fragment", target: "/api/orders#/../admin", headers: tok, status: 400},
		{name: "query hides nothing", target: "/api/admin?/api/orders", headers: tok, status: 403},
		{name: "escaped question mark", target: "/api/admin%3f/x", headers: tok, status: 403},

		// What BASE normalization keeps, as Istio does: the upstream gets
		// exactly the target that was authorized, never a decoded one.
		{name: "escaped slash is kept", target: "/api/x/..%2fadmin", headers: tok, status: 200},
		{name: "escaped backslash is kept", target: "/api/x%5c..%5cadmin", headers: tok, status: 200},
		{name: "double-escaped dot-dot is kept", target: "/api/x/%252e%252e/admin", headers: tok, status: 200},
		{name: "double-escaped letter is kept", target: "/api/%2561dmin", headers: tok, status: 200},
		{name: "inner double slash is kept", target: "/api//admin", headers: tok, status: 200},
		{name: "path parameter on an allowed path", target: "/api/orders;jsessionid=1", headers: tok, status: 200},
		{name: "raw characters are escaped", target: "/api/a\"b<c>", headers: tok, status: 200, upstream: "/api/a%22b%3Cc%3E"},

		{name: "host in upper case", target: "/public/logo.png", host: "ORDERS.EXAMPLE", status: 200},
		{name: "host with a port", target: "/public/logo.png", host: "orders.example:80", status: 403},
		{name: "host with a trailing dot", target: "/public/logo.png", host: "orders.example.", status: 403},
		{name: "another host", target: "/public/logo.png", host: "evil.example", status: 403},
		{name: "two Host headers", target: "/public/logo.png", host: "evil.example", headers: []string{"Host: orders.example"}, status: 400, proxyOnly: true},
		{name: "absolute form names the authorized host", target: "http://orders.example/public/logo.png", host: "evil.example", status: 200, upstream: "/public/logo.png", proxyOnly: true,
			seen: func(t *testing.T, s seen) {
				if s.Host != "orders.example" {
					t.Errorf("upstream Host %q, want the authorized orders.example", s.Host)
				}
			}},
		{name: "absolute form to another host", target: "http://evil.example/public/logo.png", status: 403, proxyOnly: true},
		{name: "absolute form to the denied path", target: "http://orders.example/api/x/../admin", headers: tok, status: 403, proxyOnly: true},
		{name: "absolute form in upper case", target: "HTTP://orders.example/api/admin", headers: tok, status: 403, proxyOnly: true},
		{name: "relative target", target: "api/admin", headers: tok, status: 400, proxyOnly: true, checkStatus: 404},

		{name: "DELETE", method: "DELETE", target: "/api/orders", headers: tok, status: 403},
		{name: "delete in lower case", method: "delete", target: "/api/orders", headers: tok, status: 400},
		{name: "Delete in mixed case", method: "Delete", target: "/api/orders", headers: tok, status: 400},
		{name: "get in lower case", method: "get", target: "/public/logo.png", status: 400},
		{name: "an unknown method", method: "PURGE", target: "/api/orders", headers: tok, status: 200},
	})
}
