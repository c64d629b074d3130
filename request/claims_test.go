package request

import (
	"encoding/json"
	"fmt"
	"maps"
	"testing"
)

func TestClaims(t *testing.T) {
	for _, n := range []int{0, 1, 8, 9, 40} { // linear and binary search
		m := map[string]any{}
		for i := range n {
			m[fmt.Sprintf("c%02d", i)] = fmt.Sprint(i)
		}
		c := ClaimsOf(m)
		if c.Len() != n || !maps.Equal(c.Map(), m) {
			t.Fatalf("%d claims: %v", n, c.Map())
		}
		for name, v := range m {
			if got, ok := c.Get(name); !ok || got != v {
				t.Errorf("%d claims: Get(%s) = %v, %v", n, name, got, ok)
			}
		}
		for _, missing := range []string{"", "c", "c99", "d"} {
			if _, ok := c.Get(missing); ok {
				t.Errorf("%d claims: Get(%q) found", n, missing)
			}
		}
		prev := ""
		for name := range c.All() {
			if name <= prev && prev != "" {
				t.Errorf("All out of order: %q after %q", name, prev)
			}
			prev = name
		}
	}
	if _, err := MakeClaims([]Claim{{"a", 1}, {"b", 2}, {"a", 3}}); err == nil {
		t.Error("MakeClaims accepted a name twice")
	}
	c := ClaimsOf(map[string]any{"sub": "alice", "n": json.Number("1"), "roles": []any{"a", "b"}, "x": map[string]any{"y": true}})
	if c.String("sub") != "alice" || c.String("n") != "" || c.String("none") != "" {
		t.Errorf("String: %q %q", c.String("sub"), c.String("n"))
	}
	b, err := json.Marshal(c)
	if err != nil || string(b) != `{"n":1,"roles":["a","b"],"sub":"alice","x":{"y":true}}` {
		t.Errorf("MarshalJSON = %s, %v", b, err)
	}
	if b, err := json.Marshal(Claims{}); err != nil || string(b) != "{}" {
		t.Errorf("empty: %s, %v", b, err)
	}
}

func TestPrincipal(t *testing.T) {
	id := &Identity{Issuer: "https://sts.windows.net/t/", Subject: "abc"}
	if got := id.Principal(); got != "https://sts.windows.net/t//abc" {
		t.Errorf("Principal() = %q", got)
	}
}
