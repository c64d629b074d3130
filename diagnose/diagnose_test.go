package diagnose

import (
	"strings"
	"testing"

	"github.com/idgate/idgate/engine"
	"github.com/idgate/idgate/policy"
	"github.com/idgate/idgate/request"
)

const policies = `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: p, namespace: ns}
spec:
  rules:
  - when:
    - key: request.auth.claims[scp]
      values: ["Orders.Read"]
    - key: request.auth.presenter
      values: ["client"]
`

func TestHints(t *testing.T) {
	docs, err := policy.Parse("p.yaml", []byte(policies))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		claims map[string]any
		want   []string
	}{
		{"nothing to say", map[string]any{"scp": "Orders.Read", "azp": "client"}, nil},
		{"scp with several scopes in one string", map[string]any{"scp": "Orders.Read Orders.Write", "azp": "client"}, []string{"spaceDelimitedClaims: [scp]"}},
		{"groups overage", map[string]any{"azp": "c", "_claim_names": map[string]any{"groups": "src1"}}, []string{"groups overage claim"}},
		{"v1 token at a presenter rule", map[string]any{"appid": "client"}, []string{"names its client in appid"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := engine.Decision{Identity: &request.Identity{Claims: request.ClaimsOf(tt.claims)}}
			got := Hints(d, docs)
			if len(got) != len(tt.want) {
				t.Fatalf("hints = %q, want %d", got, len(tt.want))
			}
			for i, w := range tt.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("hint %d = %q, want it to mention %q", i, got[i], w)
				}
			}
		})
	}
	if got := Hints(engine.Decision{}, docs); got != nil {
		t.Errorf("anonymous decision: hints = %q", got)
	}
}
