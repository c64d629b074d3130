package main

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestCheckExamplesAreValid(t *testing.T) {
	code, out, errOut := runIdgate(t, "", "check", "../../examples")
	if code != 0 {
		t.Fatalf("idgate check examples/ exited %d:\n%s%s", code, out, errOut)
	}
	if !strings.Contains(out, " documents, ") {
		t.Errorf("no summary line:\n%s", out)
	}
}

func TestCheckWarnsWithFix(t *testing.T) {
	code, out, _ := runIdgate(t, "", "check", "../../lint/testdata/mistakes.yaml")
	if code != 0 {
		t.Errorf("warnings alone must exit 0, got %d", code)
	}
	for _, want := range []string{
		`warning: ../../lint/testdata/mistakes.yaml:19: orders/principals: spec.rules[0].from[0].source.requestPrincipals[0]:`,
		`fix: write "https://sts.windows.net/11111111-2222-3333-4444-555555555555//*"`,
		`[scope-not-split]`,
		`[host-without-port]`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if code, _, _ := runIdgate(t, "", "check", "--strict", "../../lint/testdata/mistakes.yaml"); code != 1 {
		t.Errorf("--strict with warnings exited %d, want 1", code)
	}
}

func TestCheckErrorsExit1(t *testing.T) {
	code, out, _ := runIdgate(t, "", "check", "testdata/test/broken.yaml")
	if code != 1 {
		t.Errorf("exit status = %d, want 1", code)
	}
	if !strings.Contains(out, "testdata/test/broken.yaml:9:") {
		t.Errorf("the error does not name file and line:\n%s", out)
	}
}

func TestCheckJSON(t *testing.T) {
	_, out, _ := runIdgate(t, "", "check", "-o", "json", "../../lint/testdata/mistakes.yaml")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 5 {
		t.Fatalf("want one line per finding, got:\n%s", out)
	}
	for _, l := range lines {
		var r checkRecord
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		if r.Severity != "warning" || r.File == "" || r.Line == 0 || r.Message == "" {
			t.Errorf("incomplete record %+v", r)
		}
	}
}
