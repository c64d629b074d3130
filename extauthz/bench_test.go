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
