package forwardauth

import (
	"maps"
	"net/http"
	"strings"
	"testing"

	"github.com/idgate/idgate/engine"
)

type checkCase struct {
	name string
	// headers of the check request, besides the ones each test adds.
	headers map[string]string
	status  int
	// body starts with this ("Forbidden: no_allow_match").
	body string
	// wantHeaders must be in the answer; "" means absent.
	wantHeaders map[string]string
}

func runCases(t *testing.T, base, path string, base0 map[string]string, cases []checkCase) {
	t.Helper()
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			h := map[string]string{}
			maps.Copy(h, base0)
			maps.Copy(h, tt.headers)
			resp, body := do(t, base, path, h)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d; body %q", resp.StatusCode, tt.status, body)
			}
			if !strings.HasPrefix(body, tt.body) {
				t.Errorf("body %q, want it to start with %q", body, tt.body)
			}
			if id := resp.Header.Get("X-Request-Id"); id == "" {
				t.Error("no X-Request-Id in the answer")
			} else if tt.status != http.StatusOK && !strings.Contains(body, id) {
				t.Errorf("body %q does not name the request id %s", body, id)
			}
			for name, want := range tt.wantHeaders {
				if got := resp.Header.Get(name); got != want {
					t.Errorf("%s: %q, want %q", name, got, want)
				}
			}
		})
	}
}

// nginx's auth_request describes the original request in X-Original-*
// headers; with one trusted proxy, X-Real-IP is the client.
func TestNginx(t *testing.T) {
	f := newFixture(t, policies, engine.Options{})
	base := serve(t, Handler(f.Engine, Options{TrustedProxies: 1, Logger: discard}))
	valid := f.token(t, nil)
	expired := f.token(t, map[string]any{"exp": 1})
	orig := map[string]string{
		"X-Original-Method": "GET",
		"X-Original-Host":   "orders.example",
		"X-Real-IP":         "198.51.100.20",
	}
	uri := func(u string) map[string]string { return map[string]string{"X-Original-URI": u} }
	with := func(m map[string]string, kv ...string) map[string]string {
		m = maps.Clone(m)
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	runCases(t, base, NginxPath, orig, []checkCase{
		{"valid token", with(uri("/api/orders?page=2"), "Authorization", "Bearer "+valid), 200, "",
			map[string]string{"X-User-Oid": "oid-alice", "Www-Authenticate": ""}},
		{"a token in the query of the original URI", uri("/api/orders?access_token=" + valid), 200, "",
			map[string]string{"X-User-Oid": "oid-alice"}},
		{"no token", uri("/api/orders"), 403, "Forbidden: no_allow_match",
			map[string]string{"X-User-Oid": "", "Www-Authenticate": ""}},
		{"expired token", with(uri("/api/orders?page=2"), "Authorization", "Bearer "+expired), 401, "Unauthorized: expired",
			map[string]string{"Www-Authenticate": `Bearer realm="http://orders.example/api/orders", error="invalid_token"`}},
		{"garbage token", with(uri("/api/orders"), "Authorization", "Bearer x.y.z"), 401, "Unauthorized: ", nil},
		{"wrong audience", with(uri("/api"), "Authorization", "Bearer "+f.token(t, map[string]any{"aud": "api://other"})), 403, "Forbidden: wrong_audience",
			map[string]string{"Www-Authenticate": `Bearer realm="http://orders.example/api", error="invalid_token"`}},
		{"public GET on the right host", uri("/public/logo.png"), 200, "", nil},
		{"method comes from X-Original-Method", with(uri("/public/logo.png"), "X-Original-Method", "POST"), 403, "Forbidden: no_allow_match", nil},
		{"host comes from X-Original-Host", with(uri("/public/logo.png"), "X-Original-Host", "evil.example"), 403, "Forbidden: no_allow_match", nil},
		{"DENY wins over a valid token", with(uri("/admin"), "Authorization", "Bearer "+valid), 403, "Forbidden: denied_by_policy", nil},
		{"the path is normalized before matching", with(uri("/public/../admin"), "Authorization", "Bearer "+valid), 403, "Forbidden: denied_by_policy", nil},
		{"escaped dots are normalized too", with(uri("/public/%2e%2e/admin"), "Authorization", "Bearer "+valid), 403, "Forbidden: denied_by_policy", nil},
		{"partner address from X-Real-IP", with(uri("/partner/feed"), "X-Real-IP", "203.0.113.7"), 200, "", nil},
		{"a forged X-Forwarded-For is not the client", with(uri("/partner/feed"), "X-Forwarded-For", "203.0.113.7"), 403, "Forbidden: no_allow_match", nil},
		{"a client-sent X-User-Oid is not echoed", with(uri("/public/x"), "X-User-Oid", "forged"), 200, "",
			map[string]string{"X-User-Oid": ""}},
		{"the incoming request id is kept", with(uri("/api"), "X-Request-Id", "req-42"), 403, "Forbidden: no_allow_match",
			map[string]string{"X-Request-Id": "req-42"}},
		{"a request id that could inject is replaced", with(uri("/public/x"), "X-Request-Id", "a b"), 200, "", nil},
		{"a bad path is refused with 403, which nginx passes on", uri("/a%00b"), 403, "Forbidden: invalid_path", nil},
		{"a fragment is refused", uri("/a#b"), 403, "Forbidden: invalid_path", nil},
		{"absolute-form is refused", uri("http://orders.example/public/x"), 403, "Forbidden: invalid_path", nil},
	})
	runCases(t, base, NginxPath, nil, []checkCase{
		{"without X-Original-URI nothing is decided", map[string]string{"X-Original-Method": "GET"}, 403, "Forbidden: invalid_check_request", nil},
		{"without X-Original-Method nothing is decided", uri("/public/x"), 403, "Forbidden: invalid_check_request", nil},
		{"a method that is not a token", with(uri("/public/x"), "X-Original-Method", "GET /x"), 403, "Forbidden: invalid_check_request", nil},
		{"a malformed X-Real-IP", with(uri("/public/x"), "X-Original-Method", "GET", "X-Real-IP", "somewhere"), 403, "Forbidden: invalid_check_request", nil},
	})
}

// Without X-Original-Host, nginx's Host header names the original host.
func TestNginxHostFallback(t *testing.T) {
	f := newFixture(t, policies, engine.Options{})
	h := Handler(f.Engine, Options{TrustedProxies: 1, Logger: discard})
	for host, want := range map[string]int{"orders.example": 200, "evil.example": 403} {
		req := newCheck(NginxPath, map[string]string{"X-Original-Method": "GET", "X-Original-URI": "/public/x", "X-Real-IP": "198.51.100.20"})
		req.Host = host
		if got := record(h, req).Code; got != want {
			t.Errorf("Host %s: status %d, want %d", host, got, want)
		}
	}
}

// Traefik's ForwardAuth and Caddy's forward_auth send X-Forwarded-*; the
// client is the last X-Forwarded-For entry, which they append.
func TestForwardAuth(t *testing.T) {
	f := newFixture(t, policies, engine.Options{})
	base := serve(t, Handler(f.Engine, Options{TrustedProxies: 1, Logger: discard}))
	valid := f.token(t, nil)
	orig := map[string]string{
		"X-Forwarded-Method": "GET",
		"X-Forwarded-Proto":  "https",
		"X-Forwarded-Host":   "orders.example",
		"X-Forwarded-For":    "198.51.100.20",
	}
	uri := func(u string, kv ...string) map[string]string {
		m := map[string]string{"X-Forwarded-Uri": u}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	runCases(t, base, ForwardAuthPath, orig, []checkCase{
		{"valid token", uri("/api/orders", "Authorization", "Bearer "+valid), 200, "",
			map[string]string{"X-User-Oid": "oid-alice"}},
		{"no token", uri("/api/orders"), 403, "Forbidden: no_allow_match", nil},
		{"expired token, realm with the forwarded scheme", uri("/api/orders?page=2", "Authorization", "Bearer "+f.token(t, map[string]any{"exp": 1})), 401, "Unauthorized: expired",
			map[string]string{"Www-Authenticate": `Bearer realm="https://orders.example/api/orders", error="invalid_token"`}},
		{"public GET", uri("/public/x"), 200, "", nil},
		{"method comes from X-Forwarded-Method", uri("/public/x", "X-Forwarded-Method", "DELETE"), 403, "Forbidden: no_allow_match", nil},
		{"partner: the last X-Forwarded-For entry", uri("/partner/feed", "X-Forwarded-For", "127.0.0.1, 203.0.113.7"), 200, "", nil},
		{"a forged entry left of the proxy's is not the client", uri("/partner/feed", "X-Forwarded-For", "203.0.113.7, 198.51.100.20"), 403, "Forbidden: no_allow_match", nil},
		{"a bad path is 400, as the reverse proxy answers", uri("/a%00b"), 400, "Bad Request: invalid_path", nil},
		{"asterisk-form is 404, as Envoy answers", uri("*"), 404, "Not Found: invalid_path", nil},
	})
	runCases(t, base, ForwardAuthPath, nil, []checkCase{
		{"without X-Forwarded-Host nothing is decided", map[string]string{"X-Forwarded-Method": "GET", "X-Forwarded-Uri": "/public/x"}, 400, "Bad Request: invalid_check_request", nil},
		{"without X-Forwarded-Uri nothing is decided", map[string]string{"X-Forwarded-Method": "GET", "X-Forwarded-Host": "orders.example"}, 400, "Bad Request: invalid_check_request", nil},
	})
}

// A header the proxy sets once is refused when repeated: which value the
// proxy meant cannot be known.
func TestRepeatedHeader(t *testing.T) {
	f := newFixture(t, policies, engine.Options{})
	h := Handler(f.Engine, Options{TrustedProxies: 1, Logger: discard})
	req := newCheck(NginxPath, map[string]string{"X-Original-Method": "GET", "X-Original-Host": "orders.example", "X-Real-IP": "198.51.100.20"})
	req.Header.Add("X-Original-URI", "/public/x")
	req.Header.Add("X-Original-URI", "/admin")
	rec := record(h, req)
	if rec.Code != http.StatusForbidden || !strings.HasPrefix(rec.Body.String(), "Forbidden: invalid_check_request") {
		t.Errorf("got %d %q, want 403 invalid_check_request", rec.Code, rec.Body.String())
	}
}

// With no trusted proxy, the asking proxy itself is source.ip and
// remote.ip — on loopback, a localhost exemption lets everything in. This
// is why the documented configuration uses --trusted-proxies 1.
func TestTrustedProxies(t *testing.T) {
	f := newFixture(t, localhostPolicies, engine.Options{})
	check := map[string]string{"X-Original-Method": "GET", "X-Original-URI": "/debug", "X-Original-Host": "orders.example"}
	tests := []struct {
		name    string
		trusted int
		headers map[string]string
		status  int
	}{
		{"0: the proxy on loopback is the source", 0, map[string]string{"X-Real-IP": "198.51.100.20"}, 200},
		{"1: X-Real-IP is the source", 1, map[string]string{"X-Real-IP": "198.51.100.20"}, 403},
		{"1: a local client is exempt", 1, map[string]string{"X-Real-IP": "127.0.0.1"}, 200},
		{"1: a forged X-Forwarded-For does not make a client local", 1, map[string]string{"X-Real-IP": "198.51.100.20", "X-Forwarded-For": "127.0.0.1"}, 403},
		{"1: nothing reported means no address, not the proxy's", 1, nil, 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := serve(t, Handler(f.Engine, Options{TrustedProxies: tt.trusted, Logger: discard}))
			h := maps.Clone(check)
			maps.Copy(h, tt.headers)
			if resp, body := do(t, base, NginxPath, h); resp.StatusCode != tt.status {
				t.Errorf("status %d, want %d: %s", resp.StatusCode, tt.status, body)
			}
		})
	}
}

// Other paths go to Next, unchanged, or get 404.
func TestRouting(t *testing.T) {
	f := newFixture(t, policies, engine.Options{})
	var got string
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.RequestURI
		w.WriteHeader(http.StatusTeapot)
	})
	h := Handler(f.Engine, Options{Next: next, Logger: discard})
	if rec := record(h, newCheck("/envoy//a/../b", nil)); rec.Code != http.StatusTeapot || got != "/envoy//a/../b" {
		t.Errorf("Next got %q (status %d), want the target untouched", got, rec.Code)
	}
	h = Handler(f.Engine, Options{Logger: discard})
	for _, p := range []string{"/envoy/x", "/nginx/", "/forward-auth/x", "/"} {
		if rec := record(h, newCheck(p, nil)); rec.Code != http.StatusNotFound || rec.Header().Get("X-Request-Id") == "" {
			t.Errorf("%s: status %d, want 404 with a request id", p, rec.Code)
		}
	}
}

// In dry-run mode a denial is recorded and the request goes through.
func TestDryRun(t *testing.T) {
	f := newFixture(t, policies, engine.Options{DryRun: true})
	h := Handler(f.Engine, Options{TrustedProxies: 1, Logger: discard})
	req := newCheck(NginxPath, map[string]string{"X-Original-Method": "GET", "X-Original-URI": "/api", "X-Original-Host": "orders.example", "X-Real-IP": "198.51.100.20"})
	if rec := record(h, req); rec.Code != http.StatusOK {
		t.Errorf("status %d, want 200 in dry-run mode", rec.Code)
	}
	// A request that cannot be described is still refused.
	req = newCheck(NginxPath, map[string]string{"X-Original-Method": "GET", "X-Original-URI": "/a%00", "X-Real-IP": "198.51.100.20"})
	if rec := record(h, req); rec.Code != http.StatusForbidden {
		t.Errorf("bad path: status %d, want 403 in dry-run mode too", rec.Code)
	}
}
