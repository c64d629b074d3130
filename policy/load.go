package policy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
	securityv1beta1 "istio.io/api/security/v1beta1"
)

// Limits on untrusted input.
const (
	// MaxFileSize is the largest policy file Load and Parse accept.
	MaxFileSize = 4 << 20
	// MaxDocuments is the most YAML documents one file may hold, counting
	// empty ones.
	MaxDocuments = 10_000
)

// The API versions and kinds idgate loads.
const (
	APIVersionV1      = "security.istio.io/v1"
	APIVersionV1beta1 = "security.istio.io/v1beta1"

	KindRequestAuthentication = "RequestAuthentication"
	KindAuthorizationPolicy   = "AuthorizationPolicy"
)

// DryRunAnnotation marks an AuthorizationPolicy that is evaluated and
// logged but not enforced.
const DryRunAnnotation = "istio.io/dry-run"

// An Issue is one problem in a policy file: where it is and what is wrong.
type Issue struct {
	File string
	// Line is 1-based; 0 when the problem has no line (an unreadable file).
	Line int
	// Path is the field within the document, e.g.
	// "spec.rules[0].from[0].source.principals[1]"; empty for problems
	// with the file or the YAML itself.
	Path string
	Msg  string
}

// String formats the issue as "FILE:LINE: PATH: message", leaving out the
// parts it does not have.
func (i Issue) String() string {
	var b strings.Builder
	b.WriteString(i.File)
	if i.Line > 0 {
		b.WriteString(":")
		b.WriteString(strconv.Itoa(i.Line))
	}
	b.WriteString(": ")
	if i.Path != "" {
		b.WriteString(i.Path)
		b.WriteString(": ")
	}
	b.WriteString(i.Msg)
	return b.String()
}

// LoadError reports every problem found in the policy files given to
// Load, Parse or ParseNodes. When it is returned no documents are: a
// partially loaded policy set could allow what the whole set denies.
type LoadError struct {
	Issues []Issue
}

// Error returns the issues, one per line.
func (e *LoadError) Error() string {
	lines := make([]string, len(e.Issues))
	for i, is := range e.Issues {
		lines[i] = is.String()
	}
	return strings.Join(lines, "\n")
}

// Load reads the Istio security documents in the given files and
// directories. Directories are searched recursively for *.yaml and *.yml
// files, in lexical order, skipping hidden files and directories (names
// starting with "."; this also skips the "..data" copies a Kubernetes
// ConfigMap volume holds) and not following symbolic links to directories.
// A file named explicitly is read whatever its extension, and a directory
// named explicitly is searched even through a symbolic link. Every problem
// in every file is reported in one *LoadError.
func Load(paths ...string) ([]*Document, error) {
	files, err := Files(paths...)
	var issues []Issue
	var le *LoadError
	if errors.As(err, &le) {
		issues = append(issues, le.Issues...)
	} else if err != nil {
		return nil, err
	}
	var docs []*Document
	for _, f := range files {
		data, err := readFile(f)
		if err != nil {
			issues = append(issues, Issue{File: f, Msg: err.Error()})
			continue
		}
		ds, is := parseFile(f, data)
		docs = append(docs, ds...)
		issues = append(issues, is...)
	}
	return result(docs, issues)
}

// result checks docs for duplicates and returns them, or a *LoadError
// with every issue and no documents.
func result(docs []*Document, issues []Issue) ([]*Document, error) {
	issues = append(issues, duplicates(docs)...)
	if len(issues) > 0 {
		return nil, &LoadError{Issues: issues}
	}
	return docs, nil
}

// Files expands paths the way Load does, into the list of files it reads.
// A directory with no YAML file in it is an error: a policy directory
// mistyped or mounted empty must not look like "no policies".
func Files(paths ...string) ([]string, error) {
	var files []string
	var issues []Issue
	seen := make(map[string]bool)
	add := func(f string) {
		key := filepath.Clean(f)
		if abs, err := filepath.Abs(f); err == nil {
			key = abs
		}
		if !seen[key] {
			seen[key] = true
			files = append(files, f)
		}
	}
	for _, p := range paths {
		info, err := os.Stat(p)
		if err != nil {
			issues = append(issues, Issue{File: p, Msg: pathError(err)})
			continue
		}
		if !info.IsDir() {
			add(p)
			continue
		}
		root := p
		if li, err := os.Lstat(p); err == nil && li.Mode()&fs.ModeSymlink != 0 {
			// A directory named through a symlink is searched; WalkDir
			// follows the root only when it ends in a separator.
			root = p + string(filepath.Separator)
		}
		found := 0
		err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if path != root && strings.HasPrefix(d.Name(), ".") {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if d.IsDir() || !isYAMLName(d.Name()) {
				return nil
			}
			if d.Type()&fs.ModeSymlink != 0 {
				target, err := os.Stat(path)
				if err != nil || !target.Mode().IsRegular() {
					return nil
				}
			} else if !d.Type().IsRegular() {
				return nil
			}
			found++
			add(path)
			return nil
		})
		if err != nil {
			issues = append(issues, Issue{File: p, Msg: pathError(err)})
			continue
		}
		if found == 0 {
			issues = append(issues, Issue{File: p, Msg: "directory holds no .yaml or .yml files"})
		}
	}
	if len(issues) > 0 {
		return files, &LoadError{Issues: issues}
	}
	return files, nil
}

func isYAMLName(name string) bool {
	ext := strings.ToLower(filepath.Ext(name))
	return ext == ".yaml" || ext == ".yml"
}

// pathError drops the path that *fs.PathError repeats, since issues name
// the file already.
func pathError(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Op + ": " + pe.Err.Error()
	}
	return err.Error()
}

func readFile(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, errors.New(pathError(err))
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, errors.New(pathError(err))
	}
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("file is larger than %d bytes", MaxFileSize)
	}
	return data, nil
}

// yamlLine finds the line yaml.v3 puts in its error messages.
var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func yamlIssue(file string, err error) Issue {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		if yamlParserError(m[2]) {
			line++
		}
		return Issue{File: file, Line: line, Msg: "invalid YAML: " + m[2]}
	}
	return Issue{File: file, Msg: "invalid YAML: " + strings.TrimPrefix(msg, "yaml: ")}
}

// yamlParserError reports whether a yaml.v3 message comes from its parser
// rather than its scanner. yaml.v3 numbers the lines of scanner errors from
// 1 but those of parser errors from 0; these are libyaml's parser messages.
func yamlParserError(msg string) bool {
	for _, prefix := range []string{
		"did not find expected <document start>",
		"did not find expected node content",
		"did not find expected key",
		"did not find expected '-' indicator",
		"did not find expected ',' or ']'",
		"did not find expected ',' or '}'",
		"found undefined tag handle",
		"found duplicate %YAML directive",
		"found incompatible YAML document",
		"found duplicate %TAG directive",
	} {
		if strings.HasPrefix(msg, prefix) {
			return true
		}
	}
	return false
}

// Parse reads the documents of one YAML file (several separated by "---";
// empty ones are skipped). file names the data in issues and documents.
// Every problem in the file is reported in one *LoadError.
func Parse(file string, data []byte) ([]*Document, error) {
	return result(parseFile(file, data))
}

// parseFile returns the documents of a file that loaded and the issues of
// those that did not, sorted by line.
func parseFile(file string, data []byte) ([]*Document, []Issue) {
	if len(data) > MaxFileSize {
		return nil, []Issue{{File: file, Msg: fmt.Sprintf("file is larger than %d bytes", MaxFileSize)}}
	}
	p := &parser{d: newDecoder(file), alias: newAliasCheck()}
	var roots []*yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for count := 0; ; count++ {
		var n yaml.Node
		err := dec.Decode(&n)
		if err == io.EOF {
			break
		}
		if err != nil {
			// The documents before the broken one are still checked.
			p.d.add(yamlIssue(file, err))
			break
		}
		if count == MaxDocuments {
			return nil, []Issue{{File: file, Line: n.Line, Msg: fmt.Sprintf("more than %d YAML documents", MaxDocuments)}}
		}
		roots = append(roots, &n)
	}
	var docs []*Document
	index := 0
	for _, root := range roots {
		content := root
		if root.Kind == yaml.DocumentNode {
			if len(root.Content) == 0 {
				continue
			}
			content = root.Content[0]
		}
		if isNull(resolve(content)) {
			continue // an empty document between "---" separators
		}
		if doc := p.document(content, index); doc != nil {
			docs = append(docs, doc)
		}
		index++
	}
	return docs, p.d.problems()
}

// ParseNode reads one document embedded in another YAML file, such as an
// entry of a policy test file's "policies" list. Lines are those of the
// enclosing file; index becomes the document's Index.
func ParseNode(file string, node *yaml.Node, index int) (*Document, error) {
	p := &parser{d: newDecoder(file), alias: newAliasCheck()}
	p.index = index
	docs, err := p.nodes([]*yaml.Node{node})
	if err != nil {
		return nil, err
	}
	return docs[0], nil
}

// ParseNodes reads documents embedded in another YAML file, each at the
// index of its position in nodes, with one bound on alias expansion for
// all of them. Two documents of the same kind, namespace and name are an
// error.
func ParseNodes(file string, nodes []*yaml.Node) ([]*Document, error) {
	p := &parser{d: newDecoder(file), alias: newAliasCheck()}
	return p.nodes(nodes)
}

// parser holds the state of one Parse or ParseNodes call.
type parser struct {
	d     *decoder
	alias *aliasCheck
	index int // the index of the first node, for ParseNode
	// aliasFailed is set once the alias check refused the input.
	aliasFailed bool
}

func (p *parser) nodes(nodes []*yaml.Node) ([]*Document, error) {
	var docs []*Document
	for i, n := range nodes {
		if n == nil {
			p.d.errorf(0, "", "document %d is missing", p.index+i)
			continue
		}
		content := n
		if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
			content = n.Content[0]
		}
		if doc := p.document(content, p.index+i); doc != nil {
			docs = append(docs, doc)
		}
	}
	return result(docs, p.d.problems())
}

// document decodes and validates one document. It returns nil when the
// document has problems, which are recorded in p.d.
func (p *parser) document(n *yaml.Node, index int) *Document {
	if p.aliasFailed {
		return nil
	}
	if line, msg := p.alias.check(n); msg != "" {
		p.d.errorf(line, "", "%s", msg)
		p.aliasFailed = true
		return nil
	}
	rn := resolve(n)
	if rn.Kind != yaml.MappingNode {
		p.d.errorf(rn.Line, "", "document %d must be a mapping with apiVersion, kind, metadata and spec, got %s", index, describe(rn))
		return nil
	}
	d := p.d
	before := d.count()
	d.lines = make(map[string]int)
	doc := &Document{File: d.file, Index: index, Line: rn.Line}

	var metadata, spec *yaml.Node
	var kindLine, apiLine int
	var kindOK, apiOK bool
	d.mapping(rn, "", func(key string, line int, v *yaml.Node) {
		d.mark(key, line)
		switch key {
		case "apiVersion":
			apiLine = line
			doc.APIVersion, apiOK = d.str(v, key)
		case "kind":
			kindLine = line
			doc.Kind, kindOK = d.str(v, key)
		case "metadata":
			metadata = v
		case "spec":
			spec = v
		case "status":
			// Written by the cluster; kubectl get -o yaml output carries it.
		default:
			msg := "unknown field"
			if s := suggest(key, []string{"apiVersion", "kind", "metadata", "spec"}); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			d.errorf(line, clip(key), "%s", msg)
		}
	})

	switch doc.APIVersion {
	case APIVersionV1, APIVersionV1beta1:
	case "":
		switch {
		case apiLine == 0:
			d.errorf(rn.Line, "apiVersion", "is required (document %d): %s or %s", index, APIVersionV1, APIVersionV1beta1)
		case apiOK:
			d.errorf(apiLine, "apiVersion", "must not be empty (document %d): %s or %s", index, APIVersionV1, APIVersionV1beta1)
		}
	default:
		d.errorf(apiLine, "apiVersion", "unsupported apiVersion %q (document %d): want %s or %s", clip(doc.APIVersion), index, APIVersionV1, APIVersionV1beta1)
	}

	switch doc.Kind {
	case KindRequestAuthentication:
		doc.RequestAuthentication = &securityv1beta1.RequestAuthentication{}
	case KindAuthorizationPolicy:
		doc.AuthorizationPolicy = &securityv1beta1.AuthorizationPolicy{}
	case "PeerAuthentication":
		d.errorf(kindLine, "kind", "PeerAuthentication is not supported (document %d): idgate enforces RequestAuthentication and AuthorizationPolicy; mutual TLS between workloads is the mesh's job", index)
	case "":
		switch {
		case kindLine == 0:
			d.errorf(rn.Line, "kind", "is required (document %d): %s or %s", index, KindRequestAuthentication, KindAuthorizationPolicy)
		case kindOK:
			d.errorf(kindLine, "kind", "must not be empty (document %d): %s or %s", index, KindRequestAuthentication, KindAuthorizationPolicy)
		}
	default:
		msg := fmt.Sprintf("unsupported kind %q (document %d): want %s or %s", clip(doc.Kind), index, KindRequestAuthentication, KindAuthorizationPolicy)
		if s := suggest(doc.Kind, []string{KindRequestAuthentication, KindAuthorizationPolicy}); s != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", s)
		}
		d.errorf(kindLine, "kind", "%s", msg)
	}

	p.metadata(doc, metadata, rn.Line)

	if spec != nil && !isNull(resolve(spec)) {
		switch {
		case doc.RequestAuthentication != nil:
			d.message(spec, doc.RequestAuthentication.ProtoReflect(), "spec")
		case doc.AuthorizationPolicy != nil:
			d.message(spec, doc.AuthorizationPolicy.ProtoReflect(), "spec")
		}
	}
	doc.lines = d.lines

	if d.count() > before {
		return nil
	}
	// A document whose shape is wrong is not checked against Istio's
	// rules: its errors would mostly echo the decoding errors.
	v := &validator{doc: doc}
	v.document()
	d.add(v.errors...)
	doc.Warnings = v.warnings
	if d.count() > before {
		return nil
	}
	return doc
}

// metadata decodes the Kubernetes object metadata of a document.
func (p *parser) metadata(doc *Document, n *yaml.Node, docLine int) {
	d := p.d
	nameSeen := false
	if n != nil && !isNull(resolve(n)) {
		d.mapping(n, "metadata", func(key string, line int, v *yaml.Node) {
			path := "metadata." + clip(key)
			d.mark(path, line)
			if isNull(resolve(v)) {
				return
			}
			switch key {
			case "name":
				nameSeen = true
				doc.Name, _ = d.str(v, path)
			case "namespace":
				doc.Namespace, _ = d.str(v, path)
			case "labels":
				doc.Labels = d.stringMap(v, path)
			case "annotations":
				doc.Annotations = d.stringMap(v, path)
			case "uid", "resourceVersion", "generation", "creationTimestamp",
				"deletionTimestamp", "deletionGracePeriodSeconds", "generateName",
				"ownerReferences", "finalizers", "managedFields", "selfLink":
				// Set by the cluster or meaningless outside it.
			default:
				msg := "unknown field"
				if s := suggest(key, []string{"name", "namespace", "labels", "annotations"}); s != "" {
					msg += fmt.Sprintf(" (did you mean %q?)", s)
				}
				d.errorf(line, path, "%s", msg)
			}
		})
	}
	if doc.Name == "" && !nameSeen {
		line := docLine
		if l, ok := d.lines["metadata"]; ok {
			line = l
		}
		d.errorf(line, "metadata.name", "is required")
	}
	if doc.Namespace == "" {
		doc.Namespace = "default"
	}
}

// duplicates reports documents of the same kind, namespace and name: in a
// cluster the second would replace the first.
func duplicates(docs []*Document) []Issue {
	var issues []Issue
	first := make(map[string]*Document)
	for _, doc := range docs {
		key := doc.Kind + " " + doc.ID()
		if prev, ok := first[key]; ok {
			issues = append(issues, Issue{
				File: doc.File, Line: doc.FieldLine("metadata.name"), Path: "metadata.name",
				Msg: fmt.Sprintf("duplicate %s %s (first defined at %s:%d)", doc.Kind, doc.ID(), prev.File, prev.FieldLine("metadata.name")),
			})
			continue
		}
		first[key] = doc
	}
	return issues
}
