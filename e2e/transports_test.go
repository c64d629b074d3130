package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/idgate/idgate/extauthz"
	"github.com/idgate/idgate/forwardauth"
	"github.com/idgate/idgate/proxy"
)

// call is one request as a client sends it.
type call struct {
	method  string
	target  string // request target: path and query, as sent
	host    string
	headers map[string]string
	client  string // the client's address; 127.0.0.1 when empty
}

// transport sends a call through one front end and returns the status
// the client gets, after the request id is set to id.
type transport struct {
	name     string
	frontend string // request.Attributes.Frontend
	send     func(t *testing.T, c call, id string) int
}

// The same requests through all front ends get the same decisions: the
// engine sees the same attributes, whatever protocol carried them.
func TestSameDecisionEverywhere(t *testing.T) {
	f := newFixture(t)
	valid := f.token(t, nil)
	bearer := func(tok string) map[string]string { return map[string]string{"Authorization": "Bearer " + tok} }
	rows := []struct {
		name   string
		call   call
		status int
		reason string // "" when nothing is decided
	}{
		{"valid token", call{target: "/api/orders?page=2", headers: bearer(valid)}, 200, "allowed_by_policy"},
		{"no token", call{target: "/api/orders"}, 403, "no_allow_match"},
		{"expired token", call{target: "/api/orders", headers: bearer(f.token(t, map[string]any{"exp": 1}))}, 401, "expired"},
		{"garbage token", call{target: "/api/orders", headers: bearer("garbage")}, 401, "malformed"},
		{"wrong audience", call{target: "/api/orders", headers: bearer(f.token(t, map[string]any{"aud": "api://other"}))}, 403, "wrong_audience"},
		{"unknown issuer", call{target: "/api/orders", headers: bearer(f.token(t, map[string]any{"iss": "https://evil.example"}))}, 401, "wrong_issuer"},
		{"token in the query", call{target: "/api/orders?access_token=" + valid + "&page=2"}, 200, "allowed_by_policy"},
		{"two different tokens", call{target: "/api/orders?access_token=" + f.token(t, map[string]any{"sub": "bob"}), headers: bearer(valid)}, 401, "multiple_tokens"},
		{"admin role claim", call{target: "/ops/restart", headers: bearer(f.token(t, map[string]any{"roles": []any{"Orders.Admin"}}))}, 200, "allowed_by_policy"},
		{"no admin role", call{target: "/ops/restart", headers: bearer(valid)}, 403, "no_allow_match"},
		{"anonymous public GET", call{target: "/public/logo.png"}, 200, "allowed_by_policy"},
		{"public POST", call{method: "POST", target: "/public/logo.png"}, 403, "no_allow_match"},
		{"public GET on another host", call{target: "/public/logo.png", host: "other.example"}, 403, "no_allow_match"},
		{"host with a port is another host", call{target: "/public/logo.png", host: "orders.example:8080"}, 403, "no_allow_match"},
		{"DENY beats a valid token", call{target: "/admin", headers: bearer(valid)}, 403, "denied_by_policy"},
		{"dot segments are normalized", call{target: "/api/../admin", headers: bearer(valid)}, 403, "denied_by_policy"},
		{"escaped dot segments are normalized", call{target: "/api/%2E%2e/admin/users", headers: bearer(valid)}, 403, "denied_by_policy"},
		{"header condition", call{target: "/api/orders", headers: map[string]string{"Authorization": "Bearer " + valid, "X-Block": "yes"}}, 403, "denied_by_policy"},
		{"CORS preflight skips authentication", call{method: "OPTIONS", target: "/api/orders", headers: map[string]string{"Origin": "https://app.example", "Access-Control-Request-Method": "GET", "Authorization": "Bearer garbage"}}, 403, "no_allow_match"},
		{"the right source address", call{target: "/local/debug", client: "127.0.0.2"}, 200, "allowed_by_policy"},
		{"another source address", call{target: "/local/debug"}, 403, "no_allow_match"},
		{"a forged X-Forwarded-For is not the source", call{target: "/local/debug", headers: map[string]string{"X-Forwarded-For": "127.0.0.2"}}, 403, "no_allow_match"},
		{"a NUL in the path is refused undecided", call{target: "/api/a%00b", headers: bearer(valid)}, 400, ""},
	}
	transports := []transport{
		proxyTransport(t, f),
		grpcTransport(t, f),
		envoyHTTPTransport(t, f),
		nginxTransport(t, f),
		forwardAuthTransport(t, f),
	}
	for i, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			if row.call.host == "" {
				row.call.host = "orders.example"
			}
			if row.call.method == "" {
				row.call.method = http.MethodGet
			}
			if row.call.client == "" {
				row.call.client = "127.0.0.1"
			}
			var first *decided
			for _, tr := range transports {
				id := fmt.Sprintf("row%d-%s", i, tr.name)
				status := tr.send(t, row.call, id)
				want := row.status
				if row.reason == "" && tr.name == "nginx" {
					// nginx passes only 401 and 403 on; idgate refuses
					// what it cannot decide with 403 there.
					want = http.StatusForbidden
				}
				if status != want {
					t.Errorf("%s: status %d, want %d", tr.name, status, want)
				}
				got, ok := f.decision(id)
				if row.reason == "" {
					if ok {
						t.Errorf("%s: decided %s, want no decision", tr.name, got.d.Reason)
					}
					continue
				}
				if !ok {
					t.Errorf("%s: no decision recorded", tr.name)
					continue
				}
				if got.frontend != tr.frontend {
					t.Errorf("%s: decision recorded for front end %q, want %q", tr.name, got.frontend, tr.frontend)
				}
				if got.d.Status != row.status || got.d.Reason != row.reason {
					t.Errorf("%s: decided %d %s, want %d %s", tr.name, got.d.Status, got.d.Reason, row.status, row.reason)
				}
				if first == nil {
					first = &got
				} else if got.d.Policy != first.d.Policy || got.d.Rule != first.d.Rule {
					t.Errorf("%s: decided by %s rule %d, %s by %s rule %d", tr.name, got.d.Policy, got.d.Rule, transports[0].name, first.d.Policy, first.d.Rule)
				}
			}
		})
	}
}

// proxyTransport sends calls through the reverse proxy to an echo
// upstream, from the call's client address.
func proxyTransport(t *testing.T, f *fixture) transport {
	up := newUpstream(t)
	u, _ := url.Parse(up.URL)
	p, err := proxy.New(f.Engine, u, proxy.Options{Logger: discard})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	return transport{name: "proxy", frontend: proxy.Frontend, send: func(t *testing.T, c call, id string) int {
		client := &http.Client{Transport: &http.Transport{
			DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(c.client)}}).DialContext,
		}}
		defer client.CloseIdleConnections()
		path, query, _ := strings.Cut(c.target, "?")
		req, err := http.NewRequest(c.method, srv.URL, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.URL.Opaque, req.URL.RawQuery = path, query
		req.Host = c.host
		setHeaders(req, c.headers)
		req.Header.Set("X-Request-Id", id)
		return statusOf(t, client, req)
	}}
}

// grpcTransport sends calls as the CheckRequests Istio's CUSTOM action
// makes: the client is the source address, headers lower-case with the
// pseudo-headers.
func grpcTransport(t *testing.T, f *fixture) transport {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := extauthz.NewGRPCServer(f.Engine, extauthz.Options{Logger: discard})
	go gs.Serve(ln)
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(); gs.GracefulStop() })
	client := authv3.NewAuthorizationClient(conn)
	return transport{name: "grpc", frontend: "extauthz-grpc", send: func(t *testing.T, c call, id string) int {
		headers := map[string]string{
			":authority": c.host, ":path": c.target, ":method": c.method, ":scheme": "http",
			"x-request-id": id, "x-forwarded-proto": "http",
		}
		for k, v := range c.headers {
			headers[strings.ToLower(k)] = v
		}
		req := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
			Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
				SocketAddress: &corev3.SocketAddress{Address: c.client, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 40000}},
			}}},
			Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
				Method: c.method, Host: c.host, Path: c.target, Scheme: "http", Protocol: "HTTP/1.1", Headers: headers,
			}},
		}}
		resp, err := client.Check(context.Background(), req)
		if err != nil {
			t.Fatalf("grpc: the call failed: %v", err)
		}
		if dr := resp.GetDeniedResponse(); dr != nil {
			return int(dr.GetStatus().GetCode())
		}
		return http.StatusOK
	}}
}

// envoyHTTPTransport sends calls as Envoy's HTTP ext_authz service does:
// the original request under /envoy, with the address Envoy received it
// from appended to X-Forwarded-For.
func envoyHTTPTransport(t *testing.T, f *fixture) transport {
	srv := httptest.NewServer(extauthz.HTTPHandler(f.Engine, extauthz.Options{TrustedProxies: 1, Logger: discard}))
	t.Cleanup(srv.Close)
	return transport{name: "envoy-http", frontend: "extauthz-http", send: func(t *testing.T, c call, id string) int {
		path, query, _ := strings.Cut(c.target, "?")
		req, err := http.NewRequest(c.method, srv.URL, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.URL.Opaque, req.URL.RawQuery = extauthz.HTTPPathPrefix+path, query
		req.Host = c.host
		setHeaders(req, c.headers)
		req.Header.Add("X-Forwarded-For", c.client)
		req.Header.Set("X-Request-Id", id)
		return statusOf(t, http.DefaultClient, req)
	}}
}

// nginxTransport sends calls as the documented nginx auth_request
// configuration does.
func nginxTransport(t *testing.T, f *fixture) transport {
	srv := httptest.NewServer(forwardauth.Handler(f.Engine, forwardauth.Options{TrustedProxies: 1, Logger: discard}))
	t.Cleanup(srv.Close)
	return transport{name: "nginx", frontend: "nginx", send: func(t *testing.T, c call, id string) int {
		req, err := http.NewRequest(http.MethodGet, srv.URL+forwardauth.NginxPath, nil)
		if err != nil {
			t.Fatal(err)
		}
		setHeaders(req, c.headers)
		req.Header.Set("X-Original-Method", c.method)
		req.Header.Set("X-Original-URI", c.target)
		req.Header.Set("X-Original-Host", c.host)
		req.Header.Set("X-Real-IP", c.client)
		req.Header.Add("X-Forwarded-For", c.client)
		req.Header.Set("X-Request-Id", id)
		return statusOf(t, http.DefaultClient, req)
	}}
}

// forwardAuthTransport sends calls as Traefik's ForwardAuth and Caddy's
// forward_auth do.
func forwardAuthTransport(t *testing.T, f *fixture) transport {
	srv := httptest.NewServer(forwardauth.Handler(f.Engine, forwardauth.Options{TrustedProxies: 1, Logger: discard}))
	t.Cleanup(srv.Close)
	return transport{name: "forward-auth", frontend: "forward-auth", send: func(t *testing.T, c call, id string) int {
		req, err := http.NewRequest(http.MethodGet, srv.URL+forwardauth.ForwardAuthPath, nil)
		if err != nil {
			t.Fatal(err)
		}
		setHeaders(req, c.headers)
		req.Header.Set("X-Forwarded-Method", c.method)
		req.Header.Set("X-Forwarded-Proto", "http")
		req.Header.Set("X-Forwarded-Host", c.host)
		req.Header.Set("X-Forwarded-Uri", c.target)
		req.Header.Add("X-Forwarded-For", c.client)
		req.Header.Set("X-Request-Id", id)
		return statusOf(t, http.DefaultClient, req)
	}}
}

func setHeaders(req *http.Request, h map[string]string) {
	for k, v := range h {
		req.Header.Set(k, v)
	}
}

func statusOf(t *testing.T, client *http.Client, req *http.Request) int {
	t.Helper()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}
