package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
)

// runIdgate runs the command line and returns its exit status and output.
func runIdgate(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

// The examples users copy must pass their own tests.
func TestExamplesPass(t *testing.T) {
	code, out, errOut := runIdgate(t, "", "test", "../../examples")
	if code != 0 {
		t.Fatalf("idgate test examples/ exited %d\n%s%s", code, out, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	last := lines[len(lines)-1]
	if !strings.HasSuffix(last, " passed, 0 failed") || strings.HasPrefix(last, "0 passed") {
		t.Errorf("last line = %q, want \"N passed, 0 failed\" with N > 0", last)
	}
}

func TestTestReportsFailures(t *testing.T) {
	code, out, _ := runIdgate(t, "", "test", "testdata/test/failing.yaml")
	if code != 1 {
		t.Errorf("exit status = %d, want 1", code)
	}
	for _, want := range []string{
		"PASS testdata/test/failing.yaml: anonymous caller is denied\n",
		"FAIL testdata/test/failing.yaml: wrongly expects an expired token to pass\n",
		"expected 200, got 401",
		"expired",
		"1 passed, 1 failed\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if !strings.HasSuffix(out, "1 passed, 1 failed\n") {
		t.Errorf("the last line is not the summary:\n%s", out)
	}
}

func TestTestJSON(t *testing.T) {
	code, out, _ := runIdgate(t, "", "test", "-o", "json", "testdata/test/failing.yaml")
	if code != 1 {
		t.Errorf("exit status = %d, want 1", code)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("got %d lines, want one per case:\n%s", len(lines), out)
	}
	var recs []testRecord
	for _, l := range lines {
		var r testRecord
		dec := json.NewDecoder(strings.NewReader(l))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&r); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		recs = append(recs, r)
	}
	want0 := testRecord{File: "testdata/test/failing.yaml", Case: "anonymous caller is denied", Expected: 403, Actual: 403, Pass: true, Policy: "foo/require-jwt", Reason: "no_allow_match"}
	if got := recs[0]; got.File != want0.File || got.Case != want0.Case || got.Expected != 403 || got.Actual != 403 || !got.Pass || got.Policy != want0.Policy || got.Reason != want0.Reason {
		t.Errorf("record 0 = %+v\nwant %+v", got, want0)
	}
	if got := recs[1]; got.Pass || got.Expected != 200 || got.Actual != 401 || got.Reason != "expired" || got.Policy != "foo/jwt" {
		t.Errorf("record 1 = %+v, want a failed case with actual 401, reason expired, policy foo/jwt", got)
	}
}

func TestTestLoadErrorExits2(t *testing.T) {
	code, out, errOut := runIdgate(t, "", "test", "testdata/test/broken.yaml", "testdata/test/failing.yaml")
	if code != 2 {
		t.Errorf("exit status = %d, want 2", code)
	}
	if out != "" {
		t.Errorf("a load error must stop the run before any case; stdout:\n%s", out)
	}
	if !strings.Contains(errOut, "testdata/test/broken.yaml:9:") || !strings.Contains(errOut, "principal") {
		t.Errorf("stderr does not name the file, line and field:\n%s", errOut)
	}
}

func TestTestUsage(t *testing.T) {
	for _, args := range [][]string{
		{"test"},
		{"test", "testdata/test/missing.yaml"},
		{"test", "-o", "xml", "testdata/test/failing.yaml"},
	} {
		if code, _, _ := runIdgate(t, "", args...); code != 2 {
			t.Errorf("idgate %v exited %d, want 2", args, code)
		}
	}
}
