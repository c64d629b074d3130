package policy

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/idgate/idgate/request"
)

// The trace is what `idgate explain` prints; its text and JSON forms are
// kept in golden files so that changes to them are deliberate.
func TestTraceGolden(t *testing.T) {
	set := entraSet(t)
	cases := []struct {
		name string
		a    *request.Attributes
		id   *request.Identity
	}{}
	a, id := entraRequest(http.MethodPost, "/api/reports/monthly", "Orders.Read")
	cases = append(cases, struct {
		name string
		a    *request.Attributes
		id   *request.Identity
	}{"denied", a, id})
	a, id = entraRequest(http.MethodGet, "/api/orders/12345", "Orders.Read")
	cases = append(cases, struct {
		name string
		a    *request.Attributes
		id   *request.Identity
	}{"allowed", a, id})
	a, _ = entraRequest(http.MethodGet, "/api/orders/12345")
	cases = append(cases, struct {
		name string
		a    *request.Attributes
		id   *request.Identity
	}{"anonymous", a, nil})

	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var tr Trace
			set.Evaluate(c.a, c.id, &tr)
			golden(t, filepath.Join("testdata", "trace", c.name+".txt"), tr.String())
			js, err := json.MarshalIndent(&tr, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			golden(t, filepath.Join("testdata", "trace", c.name+".json"), string(js)+"\n")
		})
	}
}

// Every policy and every rule is in the trace, once, in evaluation order.
func TestTraceCoversEveryRule(t *testing.T) {
	set := entraSet(t)
	a, id := entraRequest(http.MethodGet, "/api/orders/12345", "Orders.Read")
	var tr Trace
	set.Evaluate(a, id, &tr)
	if len(tr.Policies) != 10 {
		t.Fatalf("%d policies traced, want 10", len(tr.Policies))
	}
	rules := 0
	order := map[string]int{"CUSTOM": 0, "DENY": 1, "ALLOW": 2, "AUDIT": 3}
	for i, p := range tr.Policies {
		rules += len(p.Rules)
		if i > 0 && order[p.Action] < order[tr.Policies[i-1].Action] {
			t.Errorf("%s %s traced after %s", p.Action, p.Policy, tr.Policies[i-1].Action)
		}
		for j, r := range p.Rules {
			if r.Rule != j {
				t.Errorf("%s: rule %d traced at %d", p.Policy, r.Rule, j)
			}
			if len(r.Checks) == 0 {
				t.Errorf("%s rule %d: no checks traced", p.Policy, r.Rule)
			}
		}
	}
	if rules != 30 {
		t.Errorf("%d rules traced, want 30", rules)
	}
	// A trace is reset by the next evaluation.
	set.Evaluate(a, id, &tr)
	if len(tr.Policies) != 10 {
		t.Errorf("reused trace holds %d policies", len(tr.Policies))
	}
}

// Evaluate never panics on missing pieces: a nil set, nil attributes, an
// identity without claims.
func TestEvaluateNilInputs(t *testing.T) {
	var nilSet *Set
	if d := nilSet.Evaluate(nil, nil, nil); !d.Allowed || d.Reason != AllowedNoPolicies {
		t.Errorf("nil set: %+v", d)
	}
	set := entraSet(t)
	var tr Trace
	if d := set.Evaluate(nil, nil, &tr); d.Allowed {
		t.Errorf("empty request allowed: %+v", d)
	}
	id := &request.Identity{Issuer: "https://login.microsoftonline.com/11111111-2222-3333-4444-555555555555/v2.0", Subject: "x"}
	if d := set.Evaluate(&request.Attributes{Method: "GET", Path: "/api/orders/1"}, id, &tr); d.Allowed {
		t.Errorf("identity without claims allowed: %+v\n%s", d, tr.String())
	}
	if !strings.Contains(tr.String(), "token has no claim [roles]") {
		t.Errorf("trace does not explain the missing claim:\n%s", tr.String())
	}
}

// A Set is shared by every request goroutine (run with -race).
func TestEvaluateConcurrently(t *testing.T) {
	set := entraSet(t)
	a, id := entraRequest(http.MethodGet, "/api/orders/12345", "Orders.Read")
	want := set.Evaluate(a, id, nil)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var tr Trace
			for range 200 {
				if d := set.Evaluate(a, id, &tr); d != want {
					t.Errorf("concurrent decision %+v, want %+v", d, want)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// Untrusted request values (path, host, headers, claims) never make
// evaluation panic, and tracing never changes a decision.
func FuzzEvaluate(f *testing.F) {
	f.Add("GET", "/api/orders/1", "orders.example.com", "web", "Orders.Read", "g1")
	f.Add("POST", "/admin/audit/x", "admin.orders.example.com:443", "", "", "")
	f.Add("PUT", "/api/orders/1/address", "", "mobile", "Orders.Write", "aaaaaaaa-0000-0000-0000-000000000001")
	set := entraSet(f)
	f.Fuzz(func(t *testing.T, method, target, host, client, role, group string) {
		path, err := request.NormalizePath(target)
		if err != nil {
			return
		}
		a, id := entraRequest(method, path, role)
		a.Host = host
		a.Header.Set("X-Orders-Client", client)
		claims := id.Claims.Map()
		claims["groups"] = []any{group, 1.5, nil}
		id.Claims = request.ClaimsOf(claims)
		var tr Trace
		d := set.Evaluate(a, id, &tr)
		if plain := set.Evaluate(a, id, nil); plain != d {
			t.Fatalf("trace changed the decision: %+v vs %+v", d, plain)
		}
		if anon := set.Evaluate(a, nil, nil); anon.Allowed && !strings.HasPrefix(path, "/public/") && path != "/healthz" && path != "/readyz" {
			t.Fatalf("anonymous %s %s allowed by %+v", method, path, anon.By)
		}
		_ = tr.String()
	})
}
