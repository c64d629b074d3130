package forwardauth

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/idgate/idgate/engine"
)

// BenchmarkNginx answers an nginx auth_request for an allowed request
// with a valid token (verified every time), in process.
func BenchmarkNginx(b *testing.B) {
	f := newFixture(b, policies, engine.Options{})
	h := Handler(f.Engine, Options{TrustedProxies: 1, Logger: discard})
	req := newCheck(NginxPath, map[string]string{
		"X-Original-Method": "GET", "X-Original-URI": "/api/orders?page=2", "X-Original-Host": "orders.example",
		"X-Real-IP": "198.51.100.20", "Authorization": "Bearer " + f.token(b, nil),
	})
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("status %d", rec.Code)
		}
	}
}
