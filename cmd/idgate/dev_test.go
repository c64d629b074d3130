package main

import (
	"os"
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

// idgate dev runs outside the repository: without examples/ in the
// working directory the default scenario comes from the binary; a copy
// there is read instead; another missing file is an error.
func TestReadScenario(t *testing.T) {
	repo, err := policytest.ReadFile("../../examples/dev-scenario.yaml")
	if err != nil {
		t.Fatal(err)
	}
	t.Chdir(t.TempDir())
	builtIn, err := readScenario(defaultScenario)
	if err != nil {
		t.Fatalf("built-in scenario: %v", err)
	}
	if len(builtIn.Cases) == 0 || len(builtIn.Cases) != len(repo.Cases) {
		t.Fatalf("built-in scenario has %d cases, the repository's %d", len(builtIn.Cases), len(repo.Cases))
	}
	if _, err := readScenario("examples/other.yaml"); err == nil {
		t.Fatal("a missing --scenario file was not an error")
	}
	if err := os.MkdirAll("examples", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(defaultScenario, []byte("policies: []\ncases: []\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if local, err := readScenario(defaultScenario); err == nil && len(local.Cases) != 0 {
		t.Fatalf("the working directory's copy was not read: %d cases", len(local.Cases))
	}
}
