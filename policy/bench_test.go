package policy

import (
	"encoding/json"
	"net/http"
	"net/netip"
	"os"
	"testing"

	"github.com/idgate/idgate/request"
)

// entraSet compiles testdata/bench/entra.yaml.
func entraSet(tb testing.TB) *Set {
	tb.Helper()
	data, err := os.ReadFile("testdata/bench/entra.yaml")
	if err != nil {
		tb.Fatal(err)
	}
	docs, err := Parse("testdata/bench/entra.yaml", data)
	if err != nil {
		tb.Fatal(err)
	}
	set, err := Compile(docs)
	if err != nil {
		tb.Fatal(err)
	}
	return set
}

// entraRequest is a request carrying an Entra ID v2 access token for a
// user in 20 groups.
func entraRequest(method, path string, roles ...string) (*request.Attributes, *request.Identity) {
	a := &request.Attributes{
		Method:          method,
		Scheme:          "https",
		Host:            "orders.example.com",
		Path:            path,
		Header:          http.Header{"User-Agent": {"orders-web/1.0"}, "X-Request-Id": {"5f0c"}},
		SourceIP:        netip.MustParseAddr("10.1.2.3"),
		RemoteIP:        netip.MustParseAddr("203.0.113.9"),
		DestinationIP:   netip.MustParseAddr("10.1.9.9"),
		DestinationPort: 8443,
	}
	groups := make([]any, 20)
	for i := range groups {
		groups[i] = "aaaaaaaa-0000-0000-0000-0000000001" + string(rune('a'+i)) + "0"
	}
	rolesAny := make([]any, len(roles))
	for i, r := range roles {
		rolesAny[i] = r
	}
	iss := "https://login.microsoftonline.com/11111111-2222-3333-4444-555555555555/v2.0"
	id := &request.Identity{
		Issuer:    iss,
		Subject:   "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ",
		Audiences: []string{"api://orders"},
		Presenter: "66666666-0000-0000-0000-000000000000",
		Claims: request.ClaimsOf(map[string]any{
			"iss":    iss,
			"sub":    "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ",
			"aud":    "api://orders",
			"azp":    "66666666-0000-0000-0000-000000000000",
			"tid":    "11111111-2222-3333-4444-555555555555",
			"oid":    "77777777-0000-0000-0000-000000000000",
			"scp":    "Orders.Read Profile.Read",
			"roles":  rolesAny,
			"groups": groups,
			"ver":    "2.0",
			"exp":    json.Number("1767225600"),
		}),
	}
	return a, id
}

func BenchmarkEvaluate(b *testing.B) {
	set := entraSet(b)
	cases := []struct {
		name   string
		method string
		path   string
		roles  []string
		status int
	}{
		{"allowed", http.MethodGet, "/api/orders/12345", []string{"Orders.Read"}, http.StatusOK},
		{"denied", http.MethodPost, "/api/reports/monthly", []string{"Orders.Read"}, http.StatusForbidden},
	}
	for _, c := range cases {
		a, id := entraRequest(c.method, c.path, c.roles...)
		if d := set.Evaluate(a, id, nil); d.Status != c.status {
			b.Fatalf("%s: status %d (%s), want %d", c.name, d.Status, d.Reason, c.status)
		}
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				set.Evaluate(a, id, nil)
			}
		})
		b.Run(c.name+"-trace", func(b *testing.B) {
			b.ReportAllocs()
			var tr Trace
			for b.Loop() {
				set.Evaluate(a, id, &tr)
			}
		})
	}
}

// Evaluation without a trace is on every request's path: it must not
// allocate.
func TestEvaluateAllocs(t *testing.T) {
	set := entraSet(t)
	for _, c := range []struct{ method, path string }{
		{http.MethodGet, "/api/orders/12345"},
		{http.MethodPost, "/api/reports/monthly"},
		{http.MethodGet, "/api/orders/12345/items"},
		{http.MethodPut, "/api/orders/1/address"},
		{http.MethodDelete, "/admin/x"},
	} {
		a, id := entraRequest(c.method, c.path, "Orders.Read", "Orders.Write")
		if n := testing.AllocsPerRun(100, func() { set.Evaluate(a, id, nil) }); n != 0 {
			t.Errorf("%s %s: %v allocations per Evaluate, want 0", c.method, c.path, n)
		}
		if n := testing.AllocsPerRun(100, func() { set.Evaluate(a, nil, nil) }); n != 0 {
			t.Errorf("%s %s anonymous: %v allocations per Evaluate, want 0", c.method, c.path, n)
		}
	}
}
