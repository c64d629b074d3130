package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/spf13/cobra"
	securityv1beta1 "istio.io/api/security/v1beta1"

	"github.com/idgate/idgate/engine"
	"github.com/idgate/idgate/lint"
	"github.com/idgate/idgate/policy"
	"github.com/idgate/idgate/token"
)

func newCheckCmd() *cobra.Command {
	var (
		strict bool
		output string
	)
	cmd := &cobra.Command{
		Use:   "check [--strict] [-o json] FILE|DIR...",
		Short: "Validate Istio security policies and warn about the classic Entra ID mistakes",
		Long: `Validate RequestAuthentication and AuthorizationPolicy documents as Istio
would, then warn about policies that are valid but do not mean what their
authors think (v1 issuer principal patterns, scp matched as a whole string,
hosts without ports, ...). Every warning says how to fix it.

Exit status: 0 valid (warnings allowed unless --strict); 1 invalid policies,
or warnings with --strict; 2 bad usage.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "" && output != "json" {
				return usageErrorf("check: -o takes json, not %q", output)
			}
			out := cmd.OutOrStdout()
			sets, err := loadPolicySets(args)
			for _, docs := range sets {
				if err == nil {
					err = compileCheck(docs)
				}
			}
			if err != nil {
				var le *policy.LoadError
				if output == "json" {
					issues := []policy.Issue{{Msg: err.Error()}}
					if errors.As(err, &le) {
						issues = le.Issues
					}
					for _, is := range issues {
						writeJSONLine(out, checkRecord{Severity: "error", File: is.File, Line: is.Line, Path: is.Path, Message: is.Msg})
					}
				} else {
					fmt.Fprintf(out, "%v\n", err)
				}
				return &exitError{code: 1}
			}
			warnings, ndocs := 0, 0
			var findings []lint.Finding
			for _, docs := range sets {
				ndocs += len(docs)
				findings = append(findings, lint.Check(docs)...)
			}
			for _, d := range slices.Concat(sets...) {
				for _, is := range d.Warnings {
					warnings++
					if output == "json" {
						writeJSONLine(out, checkRecord{Severity: "warning", File: is.File, Line: is.Line, Policy: d.ID(), Path: is.Path, Code: "istio-validation", Message: is.Msg})
					} else {
						fmt.Fprintf(out, "warning: %s\n", is)
					}
				}
			}
			warnings += len(findings)
			for _, f := range findings {
				if output == "json" {
					writeJSONLine(out, checkRecord{Severity: "warning", File: f.File, Line: f.Line, Policy: f.Policy, Path: f.Path, Code: f.Code, Message: f.Message, Fix: f.Fix})
				} else {
					fmt.Fprintf(out, "warning: %s\n", f)
				}
			}
			if output != "json" {
				fmt.Fprintf(out, "%d documents, %d warnings\n", ndocs, warnings)
			}
			if strict && warnings > 0 {
				return &exitError{code: 1}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&strict, "strict", false, "exit 1 when there are warnings")
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: json (one object per error or warning per line)")
	return cmd
}

// compileCheck compiles the documents as the gateway would, without keys,
// to catch what the loader's validation leaves to compilation.
func compileCheck(docs []*policy.Document) error {
	_, err := engine.New(docs, engine.Options{
		Keys: func(*securityv1beta1.JWTRule) (token.KeySource, error) { return token.StaticKeys(nil), nil },
	})
	return err
}

// checkRecord is one line of `idgate check -o json`.
type checkRecord struct {
	Severity string `json:"severity"` // error or warning
	File     string `json:"file,omitempty"`
	Line     int    `json:"line,omitempty"`
	Policy   string `json:"policy,omitempty"`
	Path     string `json:"path,omitempty"`
	Code     string `json:"code,omitempty"`
	Message  string `json:"message"`
	Fix      string `json:"fix,omitempty"`
}

// writeJSONLine writes v as one line of JSON.
func writeJSONLine(w io.Writer, v any) {
	data, _ := json.Marshal(v)
	data = append(data, '\n')
	w.Write(data)
}
