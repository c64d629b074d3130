package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/idgate/idgate/policytest"
)

func newTestCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "test [-o json] FILE|DIR...",
		Short: "Run policy test files: Istio policies plus requests and the outcomes they must get",
		Long: `Run policy test files offline (no network) and report, for every case,
the expected and the actual outcome. A directory means every *.yaml and *.yml
file below it, in lexical order.

Exit status: 0 all cases passed; 1 some case failed; 2 a file could not be
loaded (bad YAML, unknown field, invalid policy).`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "" && output != "json" {
				return usageErrorf("test: -o takes json, not %q", output)
			}
			files, err := policytest.Files(args)
			if err != nil {
				return usageErrorf("test: %v", err)
			}
			if len(files) == 0 {
				return usageErrorf("test: no *.yaml or *.yml files in %s", strings.Join(args, ", "))
			}
			// Load every file before running any, so that a broken file
			// stops the run with status 2 and no partial verdict.
			suites := make([]*policytest.Suite, 0, len(files))
			for _, f := range files {
				s, err := policytest.Load(f)
				if err != nil {
					return &exitError{code: 2, err: fmt.Errorf("test: cannot load %s:\n%v", f, err)}
				}
				suites = append(suites, s)
			}
			out := cmd.OutOrStdout()
			passed, failed := 0, 0
			for _, s := range suites {
				for _, r := range s.Run(cmd.Context()) {
					if r.Pass {
						passed++
					} else {
						failed++
					}
					if output == "json" {
						writeTestJSON(out, r)
					} else {
						writeTestText(out, r)
					}
				}
			}
			if output != "json" {
				fmt.Fprintf(out, "%d passed, %d failed\n", passed, failed)
			}
			if failed > 0 {
				return &exitError{code: 1}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: json (one object per case per line)")
	return cmd
}

func writeTestText(w io.Writer, r policytest.Result) {
	verdict := "PASS"
	if !r.Pass {
		verdict = "FAIL"
	}
	fmt.Fprintf(w, "%s %s: %s\n", verdict, r.File, r.Case.Name)
	if r.Pass {
		return
	}
	fmt.Fprintf(w, "    expected %d, got %d\n", r.Expected, r.Actual)
	if r.Why != "" {
		fmt.Fprintf(w, "    %s\n", r.Why)
	}
	if r.BadRequest != nil {
		return
	}
	for _, line := range strings.Split(strings.TrimRight(r.Decision.String(), "\n"), "\n") {
		fmt.Fprintf(w, "    | %s\n", line)
	}
}

// testRecord is one line of `idgate test -o json`.
type testRecord struct {
	File     string `json:"file"`
	Case     string `json:"case"`
	Expected int    `json:"expected"`
	Actual   int    `json:"actual"`
	Pass     bool   `json:"pass"`
	Policy   string `json:"policy"`
	Reason   string `json:"reason"`
	Detail   string `json:"detail,omitempty"`
}

func writeTestJSON(w io.Writer, r policytest.Result) {
	rec := testRecord{
		File: r.File, Case: r.Case.Name, Expected: r.Expected, Actual: r.Actual, Pass: r.Pass,
		Policy: r.Decision.Policy, Reason: r.Decision.Reason, Detail: r.Decision.Detail,
	}
	if r.BadRequest != nil {
		rec.Reason, rec.Detail = "bad_request", r.BadRequest.Error()
	}
	if r.Why != "" && r.BadRequest == nil {
		rec.Detail = r.Why
	}
	writeJSONLine(w, rec)
}
