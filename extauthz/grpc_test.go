package extauthz

import (
	"context"
	"net"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/idgate/idgate/engine"
)

// startGRPC serves NewGRPCServer on a loopback port and returns a client
// connection to it.
func startGRPC(t testing.TB, eng *engine.Engine, opts Options) *grpc.ClientConn {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := NewGRPCServer(eng, opts)
	done := make(chan error, 1)
	go func() { done <- gs.Serve(ln) }()
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		gs.GracefulStop()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return conn
}

// envoyCheck is the CheckRequest Istio's CUSTOM action (Envoy's ext_authz
// filter with an envoyExtAuthzGrpc provider) sends for a request.
type envoyCheck struct {
	method, host, path string
	headers            map[string]string
	source, dest       string // ip:port
	principal          string
	sni                string
	raw                bool // encode_raw_headers: header_map instead of headers
}

func (c envoyCheck) request() *authv3.CheckRequest {
	if c.method == "" {
		c.method = "GET"
	}
	if c.host == "" {
		c.host = "orders.example"
	}
	if c.source == "" {
		c.source = "198.51.100.20:51234"
	}
	if c.dest == "" {
		c.dest = "10.9.0.5:8080"
	}
	h := map[string]string{
		":authority":        c.host,
		":path":             c.path,
		":method":           c.method,
		":scheme":           "https",
		"user-agent":        "curl/8.5.0",
		"x-forwarded-proto": "https",
	}
	for k, v := range c.headers {
		h[k] = v
	}
	hr := &authv3.AttributeContext_HttpRequest{
		Id: "1234", Method: c.method, Host: c.host, Path: c.path, Scheme: "https", Protocol: "HTTP/1.1",
	}
	if c.raw {
		hr.HeaderMap = &corev3.HeaderMap{}
		for k, v := range h {
			hr.HeaderMap.Headers = append(hr.HeaderMap.Headers, &corev3.HeaderValue{Key: k, RawValue: []byte(v)})
		}
	} else {
		hr.Headers = h
	}
	ac := &authv3.AttributeContext{
		Source:      &authv3.AttributeContext_Peer{Address: socket(c.source), Principal: c.principal},
		Destination: &authv3.AttributeContext_Peer{Address: socket(c.dest)},
		Request:     &authv3.AttributeContext_Request{Http: hr},
	}
	if c.sni != "" {
		ac.TlsSession = &authv3.AttributeContext_TLSSession{Sni: c.sni}
	}
	return &authv3.CheckRequest{Attributes: ac}
}

func socket(hostport string) *corev3.Address {
	host, port, _ := net.SplitHostPort(hostport)
	p, _ := strconv.Atoi(port)
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: host, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(p)},
	}}}
}

// header returns the value of name in opts and whether it overwrites.
func header(opts []*corev3.HeaderValueOption, name string) (value string, overwrites, found bool) {
	for _, o := range opts {
		if strings.EqualFold(o.GetHeader().GetKey(), name) {
			return o.GetHeader().GetValue(),
				o.GetAppend() != nil && !o.GetAppend().GetValue() && o.GetAppendAction() == corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
				true
		}
	}
	return "", false, false
}

type grpcWant struct {
	code   codes.Code
	status int    // HTTP status of a denial
	body   string // prefix of a denial's body
	// upstream headers an allowed answer sets ("" = not set).
	set map[string]string
	// remove are headers an allowed answer removes.
	remove []string
	// params are query parameters an allowed answer removes.
	params []string
	// deniedHeaders are headers a denial sends to the client.
	deniedHeaders map[string]string
}

func TestCheck(t *testing.T) {
	f := newFixture(t, engine.Options{})
	client := authv3.NewAuthorizationClient(startGRPC(t, f.Engine, Options{TrustedProxies: 1, Logger: discard}))
	valid := f.token(t, nil)
	bearer := map[string]string{"authorization": "Bearer " + valid}
	tests := []struct {
		name  string
		check envoyCheck
		want  grpcWant
	}{
		{"valid token", envoyCheck{path: "/api/orders?page=2", headers: map[string]string{"authorization": "Bearer " + valid, "x-user-oid": "forged"}},
			grpcWant{code: codes.OK, set: map[string]string{"x-user-oid": "oid-alice"}, remove: []string{"authorization"}}},
		{"raw headers (encode_raw_headers)", envoyCheck{path: "/api/orders", headers: bearer, raw: true},
			grpcWant{code: codes.OK, set: map[string]string{"x-user-oid": "oid-alice"}, remove: []string{"authorization"}}},
		{"a token without oid still removes a forged x-user-oid", envoyCheck{path: "/api", headers: map[string]string{"authorization": "Bearer " + f.token(t, map[string]any{"oid": nil})}},
			grpcWant{code: codes.OK, set: map[string]string{"x-user-oid": ""}, remove: []string{"authorization", "x-user-oid"}}},
		{"a query token is removed from the query", envoyCheck{path: "/api/orders?page=2&access_token=" + valid},
			grpcWant{code: codes.OK, set: map[string]string{"x-user-oid": "oid-alice"}, params: []string{"access_token"}}},
		{"no token", envoyCheck{path: "/api/orders"},
			grpcWant{code: codes.PermissionDenied, status: 403, body: "Forbidden: no_allow_match", deniedHeaders: map[string]string{"www-authenticate": ""}}},
		{"expired token", envoyCheck{path: "/api/orders?page=2", headers: map[string]string{"authorization": "Bearer " + f.token(t, map[string]any{"exp": 1})}},
			grpcWant{code: codes.Unauthenticated, status: 401, body: "Unauthorized: expired",
				deniedHeaders: map[string]string{"www-authenticate": `Bearer realm="https://orders.example/api/orders", error="invalid_token"`}}},
		{"wrong audience", envoyCheck{path: "/api", headers: map[string]string{"authorization": "Bearer " + f.token(t, map[string]any{"aud": "x"})}},
			grpcWant{code: codes.PermissionDenied, status: 403, body: "Forbidden: wrong_audience",
				deniedHeaders: map[string]string{"www-authenticate": `Bearer realm="https://orders.example/api", error="invalid_token"`}}},
		{"DENY", envoyCheck{path: "/admin", headers: bearer},
			grpcWant{code: codes.PermissionDenied, status: 403, body: "Forbidden: denied_by_policy"}},
		{"the path is normalized again", envoyCheck{path: "/api/%2e%2e/admin", headers: bearer},
			grpcWant{code: codes.PermissionDenied, status: 403, body: "Forbidden: denied_by_policy"}},
		{"a bad path is a 400 denial", envoyCheck{path: "/a%00b", headers: bearer},
			grpcWant{code: codes.PermissionDenied, status: 400, body: "Bad Request: invalid_path"}},
		{"namespace from the SPIFFE principal", envoyCheck{path: "/internal/x", principal: "spiffe://cluster.local/ns/frontend/sa/web"},
			grpcWant{code: codes.OK}},
		{"another namespace", envoyCheck{path: "/internal/x", principal: "spiffe://cluster.local/ns/backend/sa/frontend"},
			grpcWant{code: codes.PermissionDenied, status: 403}},
		{"no principal without mTLS", envoyCheck{path: "/internal/x"},
			grpcWant{code: codes.PermissionDenied, status: 403}},
		{"source.ip is the source address", envoyCheck{path: "/mesh/x", source: "10.1.7.7:40000"},
			grpcWant{code: codes.OK}},
		{"X-Forwarded-For does not make source.ip", envoyCheck{path: "/mesh/x", headers: map[string]string{"x-forwarded-for": "10.1.7.7"}},
			grpcWant{code: codes.PermissionDenied, status: 403}},
		{"remote.ip from x-envoy-external-address", envoyCheck{path: "/partner/x", headers: map[string]string{"x-envoy-external-address": "203.0.113.7"}},
			grpcWant{code: codes.OK}},
		{"remote.ip is the source without trusted hops", envoyCheck{path: "/partner/x", source: "203.0.113.7:1000", headers: map[string]string{"x-forwarded-for": "198.51.100.1, 203.0.113.7"}},
			grpcWant{code: codes.OK}},
		{"a forged X-Forwarded-For entry is not remote.ip", envoyCheck{path: "/partner/x", headers: map[string]string{"x-forwarded-for": "203.0.113.7, 198.51.100.20"}},
			grpcWant{code: codes.PermissionDenied, status: 403}},
		{"port and SNI from the destination and TLS session", envoyCheck{path: "/tls/x", dest: "10.9.0.5:8443", sni: "orders.example"},
			grpcWant{code: codes.OK}},
		{"another port", envoyCheck{path: "/tls/x", dest: "10.9.0.5:8080", sni: "orders.example"},
			grpcWant{code: codes.PermissionDenied, status: 403}},
		{"another SNI", envoyCheck{path: "/tls/x", dest: "10.9.0.5:8443", sni: "evil.example"},
			grpcWant{code: codes.PermissionDenied, status: 403}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := client.Check(context.Background(), tt.check.request())
			if err != nil {
				t.Fatalf("the call failed (%v): Envoy may fail open on that", err)
			}
			assertCheck(t, resp, tt.want)
		})
	}
}

func assertCheck(t *testing.T, resp *authv3.CheckResponse, want grpcWant) {
	t.Helper()
	if got := codes.Code(resp.GetStatus().GetCode()); got != want.code {
		t.Fatalf("status %v, want %v (%v)", got, want.code, resp)
	}
	if want.code == codes.OK {
		ok := resp.GetOkResponse()
		if ok == nil {
			t.Fatalf("no ok_response: %v", resp)
		}
		for name, v := range want.set {
			got, overwrites, found := header(ok.GetHeaders(), name)
			switch {
			case v == "" && found:
				t.Errorf("%s set to %q", name, got)
			case v != "" && (got != v || !overwrites):
				t.Errorf("%s = %q (overwrites %v), want %q overwriting any client copy", name, got, overwrites, v)
			}
		}
		if slices.ContainsFunc(want.remove, func(n string) bool { return !slices.Contains(ok.GetHeadersToRemove(), n) }) {
			t.Errorf("headers_to_remove %q, want %q among them", ok.GetHeadersToRemove(), want.remove)
		}
		for _, o := range ok.GetHeaders() {
			if slices.Contains(ok.GetHeadersToRemove(), o.GetHeader().GetKey()) {
				t.Errorf("%s is both set and removed", o.GetHeader().GetKey())
			}
		}
		if !slices.Equal(ok.GetQueryParametersToRemove(), want.params) {
			t.Errorf("query_parameters_to_remove %q, want %q", ok.GetQueryParametersToRemove(), want.params)
		}
		up, _, _ := header(ok.GetHeaders(), "x-request-id")
		down, _, _ := header(ok.GetResponseHeadersToAdd(), "x-request-id")
		if up == "" || up != down {
			t.Errorf("x-request-id upstream %q, downstream %q: want the same id both ways", up, down)
		}
		return
	}
	dr := resp.GetDeniedResponse()
	if dr == nil {
		t.Fatalf("no denied_response: %v", resp)
	}
	if got := int(dr.GetStatus().GetCode()); got != want.status {
		t.Errorf("HTTP status %d, want %d", got, want.status)
	}
	if !strings.HasPrefix(dr.GetBody(), want.body) {
		t.Errorf("body %q, want it to start with %q", dr.GetBody(), want.body)
	}
	id, _, _ := header(dr.GetHeaders(), "x-request-id")
	if id == "" || !strings.Contains(dr.GetBody(), id) {
		t.Errorf("x-request-id %q not in the headers and the body %q", id, dr.GetBody())
	}
	for name, v := range want.deniedHeaders {
		if got, _, _ := header(dr.GetHeaders(), name); got != v {
			t.Errorf("%s = %q, want %q", name, got, v)
		}
	}
}

// Envoy's x-request-id is kept, so the audit record and Envoy's access log
// share it.
func TestCheckKeepsEnvoyRequestID(t *testing.T) {
	f := newFixture(t, engine.Options{})
	s := NewServer(f.Engine, Options{Logger: discard})
	for _, c := range []envoyCheck{{path: "/api"}, {path: "/mesh/x", source: "10.1.7.7:4000"}, {path: "/mesh/x", source: "10.1.7.7:4000", raw: true}, {path: "/a%00"}} {
		path := c.path
		c.headers = map[string]string{"x-request-id": "f81d4fae-7dec-11d0-a765-00a0c91e6bf6"}
		resp, err := s.Check(context.Background(), c.request())
		if err != nil {
			t.Fatal(err)
		}
		hs := resp.GetDeniedResponse().GetHeaders()
		if c.source != "" && resp.GetOkResponse() == nil {
			t.Fatalf("%s: denied: %v", path, resp)
		}
		if ok := resp.GetOkResponse(); ok != nil {
			hs = ok.GetResponseHeadersToAdd()
			// The upstream request has Envoy's id already.
			if up, _, found := header(ok.GetHeaders(), "x-request-id"); found {
				t.Errorf("%s: x-request-id %q set upstream, where it is already", path, up)
			}
		}
		if id, _, _ := header(hs, "x-request-id"); id != "f81d4fae-7dec-11d0-a765-00a0c91e6bf6" {
			t.Errorf("%s: x-request-id %q, want Envoy's", path, id)
		}
	}
}

// A check without HTTP attributes (Envoy's network filter) cannot be
// decided and is denied, as an answer.
func TestCheckWithoutHTTP(t *testing.T) {
	f := newFixture(t, engine.Options{})
	s := NewServer(f.Engine, Options{Logger: discard})
	for name, req := range map[string]*authv3.CheckRequest{
		"empty":     {},
		"no http":   {Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{}}},
		"no method": {Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{Path: "/"}}}},
	} {
		resp, err := s.Check(context.Background(), req)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		assertCheck(t, resp, grpcWant{code: codes.PermissionDenied, status: 403, body: "Forbidden: invalid_check_request"})
	}
}

// In dry-run mode denials are recorded and the request goes through.
func TestCheckDryRun(t *testing.T) {
	f := newFixture(t, engine.Options{DryRun: true})
	s := NewServer(f.Engine, Options{Logger: discard})
	resp, err := s.Check(context.Background(), envoyCheck{path: "/admin"}.request())
	if err != nil {
		t.Fatal(err)
	}
	assertCheck(t, resp, grpcWant{code: codes.OK})
}

// The health service reports SERVING, for Kubernetes gRPC probes and
// Envoy health checks.
func TestHealth(t *testing.T) {
	f := newFixture(t, engine.Options{})
	hc := healthpb.NewHealthClient(startGRPC(t, f.Engine, Options{Logger: discard}))
	for _, svc := range []string{"", ServiceName} {
		resp, err := hc.Check(context.Background(), &healthpb.HealthCheckRequest{Service: svc})
		if err != nil {
			t.Fatalf("%q: %v", svc, err)
		}
		if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("%q: %v, want SERVING", svc, resp.GetStatus())
		}
	}
}

// A message beyond MaxMessageBytes is refused by the transport, without
// being decoded; the server keeps serving.
func TestMaxMessageBytes(t *testing.T) {
	f := newFixture(t, engine.Options{})
	client := authv3.NewAuthorizationClient(startGRPC(t, f.Engine, Options{MaxMessageBytes: 64 << 10, Logger: discard}))
	big := envoyCheck{path: "/api", headers: map[string]string{"x-big": strings.Repeat("a", 128<<10)}}
	_, err := client.Check(context.Background(), big.request())
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("oversized check: %v, want ResourceExhausted", err)
	}
	resp, err := client.Check(context.Background(), envoyCheck{path: "/public"}.request())
	if err != nil || resp.GetDeniedResponse().GetStatus().GetCode() != http.StatusForbidden {
		t.Fatalf("next check: %v, %v", resp, err)
	}
}

func TestPrincipal(t *testing.T) {
	tests := []struct{ in, principal, namespace string }{
		{"spiffe://cluster.local/ns/foo/sa/bar", "cluster.local/ns/foo/sa/bar", "foo"},
		{"spiffe://td/ns/a/sa/ns", "td/ns/a/sa/ns", "a"},
		{"spiffe://td/ns/", "td/ns/", ""},
		{"spiffe://td/sa/x", "td/sa/x", ""},
		{"CN=web", "CN=web", ""},
		{"", "", ""},
	}
	for _, tt := range tests {
		p, ns := principal(tt.in)
		if p != tt.principal || ns != tt.namespace {
			t.Errorf("principal(%q) = %q, %q; want %q, %q", tt.in, p, ns, tt.principal, tt.namespace)
		}
	}
}

func TestRemovedParams(t *testing.T) {
	tests := []struct {
		before, after string
		want          []string
	}{
		{"a=1&access_token=x&b=2", "a=1&b=2", []string{"access_token"}},
		{"access_token=x&access_token=y", "", []string{"access_token"}},
		{"access%5Ftoken=x&b", "b", []string{"access%5Ftoken", "access_token"}},
		{"a=1", "a=1", nil},
		{"&&t=1&", "", []string{"t"}},
	}
	for _, tt := range tests {
		if got := removedParams(tt.before, tt.after); !slices.Equal(got, tt.want) {
			t.Errorf("removedParams(%q, %q) = %q, want %q", tt.before, tt.after, got, tt.want)
		}
	}
}

// A source that is not an IP address (a pipe, an internal listener) leaves
// both addresses unknown: X-Forwarded-For has no trusted end to count
// from.
func TestCheckWithoutSourceAddress(t *testing.T) {
	f := newFixture(t, engine.Options{})
	s := NewServer(f.Engine, Options{TrustedProxies: 2, Logger: discard})
	req := envoyCheck{path: "/partner/x", headers: map[string]string{"x-forwarded-for": "203.0.113.7, 10.1.2.3"}}.request()
	req.Attributes.Source.Address = &corev3.Address{Address: &corev3.Address_Pipe{Pipe: &corev3.Pipe{Path: "/run/envoy.sock"}}}
	a, err := checkAttributes(req, 2)
	if err != nil {
		t.Fatal(err)
	}
	if a.SourceIP.IsValid() || a.RemoteIP.IsValid() {
		t.Errorf("addresses (%s, %s), want both unknown", a.SourceIP, a.RemoteIP)
	}
	resp, err := s.Check(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	assertCheck(t, resp, grpcWant{code: codes.PermissionDenied, status: 403, body: "Forbidden: no_allow_match"})
}

// Headers whose names differ in case alone, which Envoy never sends, are
// joined in sorted order of their names, whatever the map's order; any
// other name has its one value.
func TestCheckHeadersCaseDuplicates(t *testing.T) {
	m := map[string]string{"x-a": "1", "X-A": "2", "x-B": "3", ":path": "/p", "accept": "*/*"}
	for range 20 {
		h := checkHeaders(&authv3.AttributeContext_HttpRequest{Headers: m})
		want := http.Header{"X-A": {"2", "1"}, "X-B": {"3"}, "Accept": {"*/*"}}
		if !reflect.DeepEqual(h, want) {
			t.Fatalf("checkHeaders = %v, want %v", h, want)
		}
	}
	h := checkHeaders(&authv3.AttributeContext_HttpRequest{Headers: map[string]string{"x-a": "1", "accept": "*/*", "": "x"}})
	if want := (http.Header{"X-A": {"1"}, "Accept": {"*/*"}}); !reflect.DeepEqual(h, want) {
		t.Fatalf("checkHeaders = %v, want %v", h, want)
	}
	// A value appended to one header does not show in another.
	h["X-A"] = append(h["X-A"], "more")
	if got := h["Accept"]; len(got) != 1 || got[0] != "*/*" {
		t.Errorf("Accept = %q after appending to X-A", got)
	}
}

// Every header option of an answer overwrites, and each has messages of
// its own.
func TestOverwrites(t *testing.T) {
	hs := newOverwrites(1)
	hs.add("X-User-Oid", "a")
	hs.add("x-request-id", "b") // beyond the room asked for
	if len(hs.list) != 2 {
		t.Fatalf("%d options", len(hs.list))
	}
	for i, want := range [][2]string{{"x-user-oid", "a"}, {"x-request-id", "b"}} {
		o := hs.list[i]
		if o.GetHeader().GetKey() != want[0] || o.GetHeader().GetValue() != want[1] ||
			o.GetAppend() == nil || o.GetAppend().GetValue() || o.GetAppendAction() != corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD {
			t.Errorf("option %d = %v, want %s: %s overwriting", i, o, want[0], want[1])
		}
	}
	if hs.list[0].Header == hs.list[1].Header || hs.list[0].Append == hs.list[1].Append {
		t.Error("options share messages")
	}
}
