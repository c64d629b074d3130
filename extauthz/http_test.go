package extauthz

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/idgate/idgate/engine"
)

type httpCase struct {
	name    string
	method  string
	target  string // after the server's URL
	headers map[string]string
	status  int
	body    string
	want    map[string]string // response headers ("" = absent)
}

func runHTTP(t *testing.T, base string, cases []httpCase) {
	t.Helper()
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			method := tt.method
			if method == "" {
				method = http.MethodGet
			}
			req, err := http.NewRequest(method, base+tt.target, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Host = "orders.example"
			for k, v := range tt.headers {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body := string(b)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %q", resp.StatusCode, tt.status, body)
			}
			if !strings.HasPrefix(body, tt.body) {
				t.Errorf("body %q, want it to start with %q", body, tt.body)
			}
			if resp.Header.Get("X-Request-Id") == "" {
				t.Error("no X-Request-Id")
			}
			for name, v := range tt.want {
				if got := resp.Header.Get(name); got != v {
					t.Errorf("%s: %q, want %q", name, got, v)
				}
			}
		})
	}
}

// Envoy's HTTP service: the check request is the original with /envoy in
// front of its path, with the headers allowed_headers lets through.
func TestHTTPHandler(t *testing.T) {
	f := newFixture(t, engine.Options{})
	srv := httptest.NewServer(HTTPHandler(f.Engine, Options{TrustedProxies: 1, Logger: discard}))
	t.Cleanup(srv.Close)
	valid := f.token(t, nil)
	envoy := func(kv ...string) map[string]string {
		m := map[string]string{"X-Forwarded-For": "198.51.100.20", "X-Forwarded-Proto": "https"}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	runHTTP(t, srv.URL, []httpCase{
		{name: "valid token", target: "/envoy/api/orders?page=2", headers: envoy("Authorization", "Bearer "+valid, "X-User-Oid", "forged"), status: 200,
			want: map[string]string{"X-User-Oid": "oid-alice", "X-Envoy-Auth-Headers-To-Remove": "authorization", "Www-Authenticate": ""}},
		{name: "a token without oid: the client's copy is removed", target: "/envoy/api", headers: envoy("Authorization", "Bearer "+f.token(t, map[string]any{"oid": nil})), status: 200,
			want: map[string]string{"X-User-Oid": "", "X-Envoy-Auth-Headers-To-Remove": "x-user-oid, authorization"}},
		{name: "no token", target: "/envoy/api/orders", headers: envoy(), status: 403, body: "Forbidden: no_allow_match",
			want: map[string]string{"X-User-Oid": "", "X-Envoy-Auth-Headers-To-Remove": ""}},
		{name: "expired token", target: "/envoy/api/orders?page=2", headers: envoy("Authorization", "Bearer "+f.token(t, map[string]any{"exp": 1})), status: 401, body: "Unauthorized: expired",
			want: map[string]string{"Www-Authenticate": `Bearer realm="https://orders.example/api/orders", error="invalid_token"`}},
		{name: "the method is the original's", method: http.MethodPost, target: "/envoy/admin", headers: envoy(), status: 403, body: "Forbidden: denied_by_policy"},
		{name: "dot segments are normalized, not redirected", target: "/envoy/api/../admin", headers: envoy("Authorization", "Bearer "+valid), status: 403, body: "Forbidden: denied_by_policy"},
		{name: "escaped dot segments too", target: "/envoy/api/%2E%2E/admin", headers: envoy("Authorization", "Bearer "+valid), status: 403, body: "Forbidden: denied_by_policy"},
		{name: "slashes are not merged, as in Istio", target: "/envoy//admin", headers: envoy("Authorization", "Bearer "+valid), status: 200},
		{name: "a bad path is 400", target: "/envoy/a%00b", headers: envoy(), status: 400, body: "Bad Request: invalid_path"},
		{name: "source.ip: the address Envoy appended", target: "/envoy/mesh/x", headers: envoy("X-Forwarded-For", "203.0.113.1, 10.1.2.3"), status: 200},
		{name: "remote.ip: x-envoy-external-address", target: "/envoy/partner/x", headers: envoy("X-Envoy-External-Address", "203.0.113.7"), status: 200},
		{name: "a forged X-Forwarded-For entry is not remote.ip", target: "/envoy/partner/x", headers: envoy("X-Forwarded-For", "203.0.113.7, 198.51.100.20"), status: 403},
		{name: "destination and SNI are unknown", target: "/envoy/tls/x", headers: envoy(), status: 403},
		{name: "not under /envoy", target: "/api", headers: envoy(), status: 404},
		{name: "/envoy alone", target: "/envoy", headers: envoy(), status: 404},
		{name: "/envoyx", target: "/envoyx/api", headers: envoy(), status: 404},
	})
}

// Without a trusted proxy nothing Envoy says about addresses is believed:
// both are Envoy itself.
func TestHTTPHandlerUntrusted(t *testing.T) {
	f := newFixture(t, engine.Options{})
	srv := httptest.NewServer(HTTPHandler(f.Engine, Options{Logger: discard}))
	t.Cleanup(srv.Close)
	runHTTP(t, srv.URL, []httpCase{
		{name: "X-Forwarded-For ignored", target: "/envoy/mesh/x", headers: map[string]string{"X-Forwarded-For": "10.1.2.3"}, status: 403},
		{name: "x-envoy-external-address ignored", target: "/envoy/partner/x", headers: map[string]string{"X-Envoy-External-Address": "203.0.113.7"}, status: 403},
		{name: "realm scheme is the check's", target: "/envoy/api", headers: map[string]string{"X-Forwarded-Proto": "https", "Authorization": "Bearer x.y.z"}, status: 401,
			want: map[string]string{"Www-Authenticate": `Bearer realm="http://orders.example/api", error="invalid_token"`}},
	})
}
