package main

import (
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/idgate/idgate/devidp"
	"github.com/idgate/idgate/policy"
	"github.com/idgate/idgate/policytest"
)

// TestWritePolicies checks that the policies idgate dev writes for the
// gateway load back as exactly the scenario's, jwksUri aside.
func TestWritePolicies(t *testing.T) {
	f, err := policytest.ReadFile("../../examples/dev-scenario.yaml")
	if err != nil {
		t.Fatal(err)
	}
	docs, err := f.Documents()
	if err != nil {
		t.Fatal(err)
	}
	if n := devidp.DefaultDirectory().PointJWKSAt(docs, "http://127.0.0.1:9400"); n != 2 {
		t.Fatalf("PointJWKSAt changed %d rules, want 2", n)
	}
	path := filepath.Join(t.TempDir(), "policies.yaml")
	if err := writePolicies(path, docs); err != nil {
		t.Fatal(err)
	}
	back, err := policy.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(back) != len(docs) {
		t.Fatalf("%d documents back, want %d", len(back), len(docs))
	}
	for i, d := range docs {
		b := back[i]
		if b.ID() != d.ID() || b.Kind != d.Kind || b.APIVersion != d.APIVersion {
			t.Errorf("document %d: %s %s, want %s %s", i, b.Kind, b.ID(), d.Kind, d.ID())
		}
		if !proto.Equal(b.RequestAuthentication, d.RequestAuthentication) || !proto.Equal(b.AuthorizationPolicy, d.AuthorizationPolicy) {
			t.Errorf("document %s changed on the way through the file", d.ID())
		}
	}
	if got := back[0].RequestAuthentication.GetJwtRules()[0].GetJwksUri(); got != "http://127.0.0.1:9400/3f8d6a2e-5b7c-4e19-9a0d-1c2b3d4e5f60/discovery/v2.0/keys" {
		t.Errorf("jwksUri %s", got)
	}
}
