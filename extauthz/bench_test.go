package extauthz

import (
	"context"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/idgate/idgate/engine"
)

// BenchmarkCheck decides an allowed request with a valid token (verified
// every time), in process.
func BenchmarkCheck(b *testing.B) {
	f := newFixture(b, engine.Options{})
	s := NewServer(f.Engine, Options{Logger: discard})
	req := envoyCheck{path: "/api/orders?page=2", headers: map[string]string{"authorization": "Bearer " + f.token(b, nil)}}.request()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		resp, err := s.Check(ctx, req)
		if err != nil || resp.GetOkResponse() == nil {
			b.Fatalf("%v %v", resp, err)
		}
	}
}

// BenchmarkCheckGRPC is BenchmarkCheck over a loopback gRPC connection,
// as Envoy calls it.
func BenchmarkCheckGRPC(b *testing.B) {
	f := newFixture(b, engine.Options{})
	client := authv3.NewAuthorizationClient(startGRPC(b, f.Engine, Options{Logger: discard}))
	req := envoyCheck{path: "/api/orders?page=2", headers: map[string]string{"authorization": "Bearer " + f.token(b, nil)}}.request()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		resp, err := client.Check(ctx, req)
		if err != nil || resp.GetOkResponse() == nil {
			b.Fatalf("%v %v", resp, err)
		}
	}
}

// BenchmarkCheckFrontEnd decides an allowed request that needs no token
// (a mesh peer), in process: what the front end costs around a decision
// that is cheap, with the headers Envoy sends.
func BenchmarkCheckFrontEnd(b *testing.B) {
	f := newFixture(b, engine.Options{})
	s := NewServer(f.Engine, Options{Logger: discard})
	req := envoyCheck{path: "/mesh/orders?page=2", source: "10.1.7.7:4000", headers: map[string]string{
		"accept": "*/*", "x-request-id": "5f0c8e4a-7a8f-4c1e-9d2b-3a6f1e0b9c47", "x-envoy-attempt-count": "1",
		"x-forwarded-for": "10.1.7.7", "x-forwarded-client-cert": "By=spiffe://cluster.local/ns/orders/sa/orders;Hash=abc;Subject=\"\";URI=spiffe://cluster.local/ns/frontend/sa/web",
	}}.request()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		resp, err := s.Check(ctx, req)
		if err != nil || resp.GetOkResponse() == nil {
			b.Fatalf("%v %v", resp, err)
		}
	}
}
