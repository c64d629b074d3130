package lint

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/idgate/idgate/policy"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// Each testdata/*.yaml holds policies with (or without) the classic
// mistakes; its .golden file holds the findings, one per line with the fix.
func TestCheckGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			docs, err := policy.Load(file)
			if err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			for _, f := range Check(docs) {
				b.WriteString(f.String())
				b.WriteByte('\n')
			}
			golden := strings.TrimSuffix(file, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if got := b.String(); got != string(want) {
				t.Errorf("findings differ from %s (run go test ./lint -update to accept):\n--- got\n%s--- want\n%s", golden, got, want)
			}
		})
	}
}

func TestCheckCodes(t *testing.T) {
	docs, err := policy.Load("testdata/mistakes.yaml")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, f := range Check(docs) {
		got[f.Code]++
	}
	want := map[string]int{
		CodeV1PrincipalPattern:     1,
		CodeIssuerWildcard:         1,
		CodeUnknownIssuer:          1,
		CodePeerPrincipalAsRequest: 1,
		CodeRequestPrincipalAsPeer: 1,
		CodeHostWithoutPort:        1,
		CodeScopeNotSplit:          1,
		CodeGroupsOverage:          1,
		CodePresenterV1:            1,
		CodeAllowsNothing:          1,
	}
	for code, n := range want {
		if got[code] != n {
			t.Errorf("%s: %d findings, want %d", code, got[code], n)
		}
	}
	for code, n := range got {
		if _, ok := want[code]; !ok {
			t.Errorf("unexpected %s findings: %d", code, n)
		}
	}
}

func TestCheckNoAuthentication(t *testing.T) {
	docs, err := policy.Load("testdata/noauthn.yaml")
	if err != nil {
		t.Fatal(err)
	}
	fs := Check(docs)
	if len(fs) != 1 || fs[0].Code != CodeNoAuthentication {
		t.Fatalf("findings = %v, want exactly one %s (one per policy, not per field)", fs, CodeNoAuthentication)
	}
}

func TestCheckSplitScopesAndHostPortsAreClean(t *testing.T) {
	docs, err := policy.Load("testdata/split.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if fs := Check(docs); len(fs) != 0 {
		t.Errorf("findings for correct policies: %v", fs)
	}
}
