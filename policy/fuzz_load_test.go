package policy

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary bytes to Parse. Whatever the input, Parse must
// return either valid documents or a *LoadError whose every issue names the
// file, never panic, and give the same answer twice.
func FuzzParse(f *testing.F) {
	for _, pattern := range []string{"testdata/load/*.yaml", "testdata/load/*/*.yaml", "testdata/load/*/*.yml"} {
		files, err := filepath.Glob(pattern)
		if err != nil {
			f.Fatal(err)
		}
		for _, file := range files {
			data, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		docs, err := Parse("fuzz.yaml", data)
		if err != nil {
			var le *LoadError
			if !errors.As(err, &le) || len(le.Issues) == 0 {
				t.Fatalf("error is not a *LoadError with issues: %#v", err)
			}
			for _, is := range le.Issues {
				if is.File != "fuzz.yaml" || !strings.HasPrefix(is.String(), "fuzz.yaml") || is.Msg == "" {
					t.Fatalf("bad issue %#v", is)
				}
			}
		}
		for i, d := range docs {
			if d.File != "fuzz.yaml" || d.Index != i || d.Name == "" || d.Namespace == "" {
				t.Fatalf("bad document %d: %+v", i, d)
			}
			switch {
			case d.Kind == KindAuthorizationPolicy && d.AuthorizationPolicy != nil && d.RequestAuthentication == nil:
			case d.Kind == KindRequestAuthentication && d.RequestAuthentication != nil && d.AuthorizationPolicy == nil:
				if d.DryRun {
					t.Fatalf("dry-run RequestAuthentication %d", i)
				}
			default:
				t.Fatalf("document %d: kind %q does not match its spec", i, d.Kind)
			}
			if d.APIVersion != APIVersionV1 && d.APIVersion != APIVersionV1beta1 {
				t.Fatalf("document %d: apiVersion %q", i, d.APIVersion)
			}
		}
		docs2, err2 := Parse("fuzz.yaml", data)
		if got, want := render(t, docs2, err2), render(t, docs, err); got != want {
			t.Fatalf("Parse is not deterministic:\n%s\nthen\n%s", want, got)
		}
	})
}
