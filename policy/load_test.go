package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"gopkg.in/yaml.v3"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// golden compares got with the golden file, or rewrites it with -update.
func golden(t *testing.T, file, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (run go test -update to accept):\n--- got\n%s\n--- want\n%s", file, got, want)
	}
}

// render prints what a load produced: the error, or every document with
// its spec as indented JSON and its warnings.
func render(t *testing.T, docs []*Document, err error) string {
	t.Helper()
	var b strings.Builder
	if err != nil {
		var le *LoadError
		if !errors.As(err, &le) {
			t.Fatalf("error is %T, not *LoadError: %v", err, err)
		}
		if len(le.Issues) == 0 {
			t.Fatal("LoadError without issues")
		}
		if docs != nil {
			t.Fatal("documents returned along with an error")
		}
		fmt.Fprintf(&b, "error:\n%s\n", err)
		return b.String()
	}
	for _, d := range docs {
		fmt.Fprintf(&b, "document %d, line %d: %s %s (%s)\n", d.Index, d.Line, d.Kind, d.ID(), d.APIVersion)
		if d.DryRun {
			b.WriteString("  dry-run\n")
		}
		for _, k := range sortedKeys(d.Labels) {
			fmt.Fprintf(&b, "  label %s=%s\n", k, d.Labels[k])
		}
		for _, k := range sortedKeys(d.Annotations) {
			fmt.Fprintf(&b, "  annotation %s=%q\n", k, d.Annotations[k])
		}
		var spec []byte
		var merr error
		switch {
		case d.AuthorizationPolicy != nil && d.RequestAuthentication == nil && d.Kind == KindAuthorizationPolicy:
			spec, merr = protojson.Marshal(d.AuthorizationPolicy)
		case d.RequestAuthentication != nil && d.AuthorizationPolicy == nil && d.Kind == KindRequestAuthentication:
			spec, merr = protojson.Marshal(d.RequestAuthentication)
		default:
			t.Fatalf("document %d: kind %s does not match the spec set", d.Index, d.Kind)
		}
		if merr != nil {
			t.Fatal(merr)
		}
		// protojson varies its whitespace on purpose; normalize it.
		var compact, indented bytes.Buffer
		if err := json.Compact(&compact, spec); err != nil {
			t.Fatal(err)
		}
		if err := json.Indent(&indented, compact.Bytes(), "  ", "  "); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "  spec: %s\n", indented.String())
		for _, w := range d.Warnings {
			fmt.Fprintf(&b, "  warning: %s\n", w)
		}
	}
	return b.String()
}

// TestLoadGolden loads every testdata/load/*.yaml file: valid_* files must
// load, err_* files must fail; the documents or the errors must match the
// .golden file next to each.
func TestLoadGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/load/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no test files")
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".yaml")
		t.Run(name, func(t *testing.T) {
			docs, err := Load(f)
			switch {
			case strings.HasPrefix(name, "valid_") && err != nil:
				t.Errorf("want the file to load, got:\n%v", err)
			case strings.HasPrefix(name, "err_") && err == nil:
				t.Errorf("want an error, the file loaded")
			}
			golden(t, strings.TrimSuffix(f, ".yaml")+".golden", render(t, docs, err))
		})
	}
}

// TestParseMatchesLoad checks that Parse on a file's bytes gives what Load
// gives for the file.
func TestParseMatchesLoad(t *testing.T) {
	for _, f := range []string{"testdata/load/valid_multidoc.yaml", "testdata/load/err_when.yaml"} {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		d1, err1 := Load(f)
		d2, err2 := Parse(f, data)
		if got, want := render(t, d2, err2), render(t, d1, err1); got != want {
			t.Errorf("%s: Parse gives\n%s\nLoad gives\n%s", f, got, want)
		}
	}
}

func TestLoadDirectory(t *testing.T) {
	docs, err := Load("testdata/load/dir")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range docs {
		got = append(got, fmt.Sprintf("%s#%d %s/%s", filepath.ToSlash(d.File), d.Index, d.Kind, d.Name))
	}
	want := []string{
		"testdata/load/dir/C.YAML#0 AuthorizationPolicy/upper-c",
		"testdata/load/dir/a.yml#0 RequestAuthentication/a",
		"testdata/load/dir/a.yml#1 AuthorizationPolicy/a",
		"testdata/load/dir/b.yaml#0 AuthorizationPolicy/b",
		"testdata/load/dir/sub/c.yaml#0 AuthorizationPolicy/c",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got documents\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestLoadExplicitFilesInOrder(t *testing.T) {
	// Files named explicitly keep the order given, whatever their
	// extension; a file named twice is read once.
	dir := t.TempDir()
	txt := filepath.Join(dir, "policy.txt")
	writeFile(t, txt, "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: from-txt}\n")
	docs, err := Load("testdata/load/dir/b.yaml", txt, "testdata/load/dir/../dir/b.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != 2 || docs[0].Name != "b" || docs[1].Name != "from-txt" {
		t.Errorf("got %s", names(docs))
	}
}

func TestLoadSymlinks(t *testing.T) {
	// A Kubernetes ConfigMap volume: visible files are symlinks into a
	// hidden, timestamped directory through the "..data" symlink.
	dir := t.TempDir()
	ts := filepath.Join(dir, "..2026_01_01_00_00_00.000000001")
	if err := os.Mkdir(ts, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(ts, "policy.yaml"), "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: mounted}\n")
	symlink(t, filepath.Base(ts), filepath.Join(dir, "..data"))
	symlink(t, filepath.Join("..data", "policy.yaml"), filepath.Join(dir, "policy.yaml"))
	// A symlink to a directory is not followed, so a loop cannot hang.
	symlink(t, ".", filepath.Join(dir, "loop.yaml"))
	symlink(t, "missing.yaml", filepath.Join(dir, "dangling.yaml"))

	docs, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != 1 || docs[0].Name != "mounted" || docs[0].File != filepath.Join(dir, "policy.yaml") {
		t.Errorf("got %s", names(docs))
	}

	// A directory named through a symlink is searched.
	link := filepath.Join(t.TempDir(), "policies")
	symlink(t, dir, link)
	docs, err = Load(link)
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != 1 || docs[0].Name != "mounted" || docs[0].File != filepath.Join(link, "policy.yaml") {
		t.Errorf("through a symlink: got %s", names(docs))
	}
}

func TestLoadFileProblems(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(empty, "README.md"), "no policies here")
	bad1 := filepath.Join(dir, "bad1.yaml")
	writeFile(t, bad1, "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: x}\nspec: {action: NOPE}\n")
	bad2 := filepath.Join(dir, "bad2.yaml")
	writeFile(t, bad2, "kind: Service\n")
	missing := filepath.Join(dir, "missing.yaml")

	docs, err := Load(missing, empty, bad1, bad2)
	if docs != nil {
		t.Errorf("documents returned with an error: %s", names(docs))
	}
	var le *LoadError
	if !errors.As(err, &le) {
		t.Fatalf("want *LoadError, got %v", err)
	}
	want := []string{
		missing + ": stat: no such file or directory",
		empty + ": directory holds no .yaml or .yml files",
		bad1 + ":4: spec.action: must be one of ALLOW, DENY, AUDIT, CUSTOM, got string \"NOPE\"",
		bad2 + ":1: apiVersion: is required (document 0): security.istio.io/v1 or security.istio.io/v1beta1",
		bad2 + ":1: kind: unsupported kind \"Service\" (document 0): want RequestAuthentication or AuthorizationPolicy",
		bad2 + ":1: metadata.name: is required",
	}
	var got []string
	for _, is := range le.Issues {
		got = append(got, is.String())
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got issues\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestLoadDuplicatesAcrossFiles(t *testing.T) {
	dir := t.TempDir()
	doc := "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: same, namespace: foo}\n"
	a, b := filepath.Join(dir, "a.yaml"), filepath.Join(dir, "b.yaml")
	writeFile(t, a, doc)
	writeFile(t, b, "# a comment\n"+doc)
	_, err := Load(dir)
	want := fmt.Sprintf("%s:4: metadata.name: duplicate AuthorizationPolicy foo/same (first defined at %s:3)", b, a)
	if err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
}

// TestSchemaLimits checks the list and length limits of Istio's CRD
// schema: the limit itself loads, one more is refused.
func TestSchemaLimits(t *testing.T) {
	list := func(n int, item string) string {
		items := make([]string, n)
		for i := range items {
			items[i] = item
			if strings.Contains(item, "%d") {
				items[i] = fmt.Sprintf(item, i)
			}
		}
		return "[" + strings.Join(items, ", ") + "]"
	}
	const ap = "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: x}\nspec:\n  "
	const ra = "apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: {name: x}\nspec:\n  "
	for _, c := range []struct {
		name  string
		doc   func(n int) string
		limit int
		msg   string
	}{
		{"rules", func(n int) string { return ap + "rules: " + list(n, "{}") }, 512,
			"spec.rules: at most 512 rules"},
		{"from", func(n int) string {
			return ap + "rules: [{from: " + list(n, "{source: {principals: [p%d]}}") + "}]"
		}, 512, "spec.rules[0].from: at most 512 entries"},
		{"targetRefs", func(n int) string { return ap + "targetRefs: " + list(n, "{kind: Service, name: s%d}") }, 16,
			"spec.targetRefs: at most 16 targetRefs"},
		{"serviceAccounts", func(n int) string {
			return ap + "rules: [{from: [{source: {serviceAccounts: " + list(n, "sa%d") + "}}]}]"
		}, 16, "spec.rules[0].from[0].source.serviceAccounts: at most 16 service accounts"},
		{"serviceAccount length", func(n int) string {
			return ap + "rules: [{from: [{source: {serviceAccounts: [" + strings.Repeat("a", n) + "]}}]}]"
		}, 320, "spec.rules[0].from[0].source.serviceAccounts[0]: longer than 320 characters"},
		{"jwtRules", func(n int) string { return ra + "jwtRules: " + list(n, "{issuer: 'https://i%d'}") }, 4096,
			"spec.jwtRules: at most 4096 rules"},
		{"spaceDelimitedClaims", func(n int) string {
			return ra + "jwtRules: [{issuer: https://i, spaceDelimitedClaims: " + list(n, "c%d") + "}]"
		}, 64, "spec.jwtRules[0].spaceDelimitedClaims: at most 64 claims"},
		{"jwksUri length", func(n int) string {
			return ra + "jwtRules: [{jwksUri: 'https://i/" + strings.Repeat("k", n-len("https://i/")) + "'}]"
		}, 2048, "spec.jwtRules[0].jwksUri: longer than 2048 characters"},
		{"matchLabels", func(n int) string {
			return ap + "selector: {matchLabels: {" + strings.Trim(list(n, "k%d: v"), "[]") + "}}"
		}, 4096,
			"spec.selector.matchLabels: at most 4096 labels"},
		{"label value length", func(n int) string {
			return ap + "selector: {matchLabels: {app: " + strings.Repeat("v", n) + "}}"
		}, 63, "spec.selector.matchLabels[app]: label value longer than 63 characters"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := Parse("limits.yaml", []byte(c.doc(c.limit))); err != nil {
				t.Errorf("%d: %.500v", c.limit, err)
			}
			_, err := Parse("limits.yaml", []byte(c.doc(c.limit+1)))
			var le *LoadError
			if !errors.As(err, &le) || len(le.Issues) != 1 || !strings.HasSuffix(le.Issues[0].String(), c.msg) {
				t.Errorf("%d: got %.500v\nwant ... %s", c.limit+1, err, c.msg)
			}
		})
	}
}

func TestFileTooLarge(t *testing.T) {
	big := "# " + strings.Repeat("x", MaxFileSize) + "\n"
	_, err := Parse("big.yaml", []byte(big))
	if err == nil || err.Error() != fmt.Sprintf("big.yaml: file is larger than %d bytes", MaxFileSize) {
		t.Errorf("Parse: got %v", err)
	}
	f := filepath.Join(t.TempDir(), "big.yaml")
	writeFile(t, f, big)
	_, err = Load(f)
	if err == nil || err.Error() != fmt.Sprintf("%s: file is larger than %d bytes", f, MaxFileSize) {
		t.Errorf("Load: got %v", err)
	}
}

func TestTooManyDocuments(t *testing.T) {
	data := strings.Repeat("---\n", MaxDocuments+1)
	_, err := Parse("many.yaml", []byte(data))
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("more than %d YAML documents", MaxDocuments)) {
		t.Errorf("got %v", err)
	}
	// Exactly the limit is fine.
	docs, err := Parse("many.yaml", []byte(strings.Repeat("---\n", MaxDocuments)))
	if err != nil || len(docs) != 0 {
		t.Errorf("got %d documents, %v", len(docs), err)
	}
}

func TestIssueCap(t *testing.T) {
	var b strings.Builder
	b.WriteString("apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: many}\nspec:\n  rules:\n  - to:\n    - operation:\n        ports:\n")
	for i := 0; i < 1500; i++ {
		b.WriteString("        - nope\n")
	}
	_, err := Parse("many.yaml", []byte(b.String()))
	var le *LoadError
	if !errors.As(err, &le) {
		t.Fatalf("want *LoadError, got %v", err)
	}
	if n := len(le.Issues); n != maxIssues+1 {
		t.Fatalf("got %d issues, want %d", n, maxIssues+1)
	}
	if first := le.Issues[0].String(); first != `many.yaml:9: spec.rules[0].to[0].operation.ports[0]: "nope" is not a port number (1-65535)` {
		t.Errorf("first issue: %s", first)
	}
	if last := le.Issues[maxIssues].String(); last != "many.yaml: 500 more problems not shown" {
		t.Errorf("last issue: %s", last)
	}
}

func TestDeepNesting(t *testing.T) {
	// yaml.v3 refuses absurd nesting itself; the loader must pass that on
	// as an issue, not crash.
	data := "spec: " + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + "\n"
	_, err := Parse("deep.yaml", []byte(data))
	if err == nil || !strings.HasPrefix(err.Error(), "deep.yaml: invalid YAML: exceeded max depth") {
		t.Errorf("got %v", err)
	}
}

// TestAliasBudgetIsShared checks that the alias bound holds for all the
// documents of one call together, not each on its own: many documents that
// each expand a moderate anchor add up.
func TestAliasBudgetIsShared(t *testing.T) {
	var b strings.Builder
	b.WriteString("anchor: &big [")
	for i := 0; i < 1000; i++ {
		b.WriteString(`"cluster.local/ns/a/sa/b",`)
	}
	b.WriteString("]\npolicies:\n")
	for i := 0; i < 200; i++ {
		fmt.Fprintf(&b, "- {apiVersion: security.istio.io/v1, kind: AuthorizationPolicy, metadata: {name: p%d}, spec: {rules: [{from: [{source: {principals: *big}}]}]}}\n", i)
	}
	var root yaml.Node
	if err := yaml.Unmarshal([]byte(b.String()), &root); err != nil {
		t.Fatal(err)
	}
	policies := root.Content[0].Content[3].Content

	// One node alone is fine.
	if _, err := ParseNode("t.yaml", policies[0], 0); err != nil {
		t.Fatalf("one document: %v", err)
	}
	_, err := ParseNodes("t.yaml", policies)
	if err == nil || !strings.Contains(err.Error(), "YAML aliases expand this input by more than 1 MiB") {
		t.Errorf("got %v", err)
	}
}

// TestAliasLongString checks that the alias bound weighs bytes, not only
// nodes: a few aliases of one long string are refused too.
func TestAliasLongString(t *testing.T) {
	long := strings.Repeat("a*b", 100_000)
	src := fmt.Sprintf("apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: long}\nspec:\n  rules:\n  - from:\n    - source:\n        principals: [&s %q%s]\n", long, strings.Repeat(", *s", 10))
	_, err := Parse("long.yaml", []byte(src))
	if err == nil || err.Error() != "long.yaml:1: YAML aliases expand this input by more than 1 MiB; refusing it (alias bomb?)" {
		t.Errorf("got %.300v", err)
	}
	// Fewer aliases load (and fail validation) with messages that quote
	// the long value only in part.
	src = strings.Replace(src, strings.Repeat(", *s", 10), ", *s", 1)
	_, err = Parse("long.yaml", []byte(src))
	var le *LoadError
	if !errors.As(err, &le) || len(le.Issues) != 2 {
		t.Fatalf("got %.300v", err)
	}
	for _, is := range le.Issues {
		if len(is.Msg) > 300 {
			t.Errorf("issue of %d bytes: %.300s", len(is.Msg), is.Msg)
		}
	}
}

// TestEmbeddedDocuments parses the policies of policy test files from their
// YAML nodes: lines must be those of the test file.
func TestEmbeddedDocuments(t *testing.T) {
	for _, f := range []string{"testdata/load/embedded/orders_test.yaml", "testdata/load/embedded/broken_test.yaml"} {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var root yaml.Node
			if err := yaml.Unmarshal(data, &root); err != nil {
				t.Fatal(err)
			}
			var policies *yaml.Node
			top := root.Content[0]
			for i := 0; i+1 < len(top.Content); i += 2 {
				if top.Content[i].Value == "policies" {
					policies = top.Content[i+1]
				}
			}
			docs, err := ParseNodes(f, policies.Content)
			golden(t, strings.TrimSuffix(f, ".yaml")+".golden", render(t, docs, err))
		})
	}
}

func TestParseNodeIndex(t *testing.T) {
	node := func(src string) *yaml.Node {
		var root yaml.Node
		if err := yaml.Unmarshal([]byte(src), &root); err != nil {
			t.Fatal(err)
		}
		return root.Content[0].Content[3] // the value of "policy"
	}
	const src = "x: 1\npolicy:\n  apiVersion: security.istio.io/v1\n  kind: AuthorizationPolicy\n  metadata: {name: p}\n  spec: {rules: [{from: [{source: {%s: [a]}}]}]}\n"
	_, err := ParseNode("t.yaml", node(fmt.Sprintf(src, "principal")), 7)
	want := `t.yaml:6: spec.rules[0].from[0].source.principal: unknown field (did you mean "principals"?)`
	if err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
	doc, err := ParseNode("t.yaml", node(fmt.Sprintf(src, "principals")), 7)
	if err != nil {
		t.Fatal(err)
	}
	if doc.Index != 7 || doc.Line != 3 || doc.File != "t.yaml" {
		t.Errorf("got index %d line %d file %s", doc.Index, doc.Line, doc.File)
	}
	if _, err := ParseNode("t.yaml", nil, 0); err == nil {
		t.Error("nil node: want an error")
	}
}

func TestFieldLine(t *testing.T) {
	docs, err := Load("testdata/load/valid_ap_v1.yaml")
	if err != nil {
		t.Fatal(err)
	}
	d := docs[0]
	for path, want := range map[string]int{
		"":     2,
		"kind": 3,
		"metadata.labels[app.kubernetes.io/name]": 8,
		"spec.rules": 15,
		"spec.rules[0].from[0].source.principals[0]": 20,
		"spec.rules[0].from[1].source":               28,
		"spec.rules[0].to[0].operation.paths[2]":     39,
		"spec.rules[0].when[1].notValues":            45,
		"spec.rules[0].when[1].notValues[0]":         45,
		"spec.rules[1]":                              76,
		"spec.rules[0].to[0].operation.notPaths[3]":  40, // not written: its list
		"spec.rules[0].from[0].source.notPrincipals": 17, // not written: its source
	} {
		if got := d.FieldLine(path); got != want {
			t.Errorf("FieldLine(%q) = %d, want %d", path, got, want)
		}
	}
}

func TestIssueString(t *testing.T) {
	for _, c := range []struct {
		is   Issue
		want string
	}{
		{Issue{File: "a.yaml", Line: 3, Path: "spec.action", Msg: "bad"}, "a.yaml:3: spec.action: bad"},
		{Issue{File: "a.yaml", Line: 3, Msg: "invalid YAML: x"}, "a.yaml:3: invalid YAML: x"},
		{Issue{File: "a.yaml", Msg: "open: permission denied"}, "a.yaml: open: permission denied"},
	} {
		if got := c.is.String(); got != c.want {
			t.Errorf("got %q, want %q", got, c.want)
		}
	}
	err := &LoadError{Issues: []Issue{{File: "a", Line: 1, Msg: "x"}, {File: "b", Line: 2, Msg: "y"}}}
	if err.Error() != "a:1: x\nb:2: y" {
		t.Errorf("got %q", err.Error())
	}
}

func TestSuggest(t *testing.T) {
	fields := []string{"principals", "notPrincipals", "requestPrincipals", "ipBlocks", "remoteIpBlocks", "jwksUri"}
	for in, want := range map[string]string{
		"principal":          "principals",
		"request_principals": "requestPrincipals",
		"ipblocks":           "ipBlocks",
		"jwksURI":            "jwksUri",
		"notPrincipal":       "notPrincipals",
		"remoteIPBlock":      "remoteIpBlocks",
		"reqestPrincipals":   "requestPrincipals",
		"completelyElse":     "",
	} {
		if got := suggest(in, fields); got != want {
			t.Errorf("suggest(%q) = %q, want %q", in, got, want)
		}
	}
}

func writeFile(t *testing.T, name, data string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Skipf("symlinks unavailable: %v", err)
	}
}

func names(docs []*Document) string {
	var s []string
	for _, d := range docs {
		s = append(s, d.File+":"+d.Name)
	}
	return strings.Join(s, ", ")
}

func BenchmarkParse(b *testing.B) {
	data, err := os.ReadFile("testdata/load/valid_ap_v1.yaml")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse("valid_ap_v1.yaml", data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseAliasBomb(b *testing.B) {
	data, err := os.ReadFile("testdata/load/err_alias_bomb.yaml")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := Parse("err_alias_bomb.yaml", data); err == nil {
			b.Fatal("bomb loaded")
		}
	}
}
