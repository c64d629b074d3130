package policy

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
	"gopkg.in/yaml.v3"
)

// maxAliasExpansion is how much YAML aliases may add to the input of one
// Parse or ParseNodes call, weighed in nodes plus bytes of values (about 1
// MiB). Legitimate anchors (a shared list of principals) add a few KiB; a
// "billion laughs" document adds gigabytes and is refused before any of it
// is decoded.
const maxAliasExpansion = 1 << 20

// maxIssues is the most issues reported for one Parse or ParseNodes call.
const maxIssues = 1000

// altFieldName reports whether a field may also be written with its proto
// (snake_case) name. Istio's CRD schema accepts camelCase names only, except
// for the fields it marks with an altName.
func altFieldName(fd protoreflect.FieldDescriptor) bool {
	return fd.FullName() == "istio.security.v1beta1.JWTRule.jwks_uri"
}

// decoder turns YAML nodes into Istio's API messages, strictly: every
// unknown field, wrong type and bad enum value becomes an issue with the
// line and field path it is at. It records the line of every field it
// decodes so that validation can point at the same places.
type decoder struct {
	file    string
	issues  []Issue
	dropped int
	lines   map[string]int
	fields  map[protoreflect.FullName]map[string]protoreflect.FieldDescriptor
}

func newDecoder(file string) *decoder {
	return &decoder{
		file:   file,
		lines:  make(map[string]int),
		fields: make(map[protoreflect.FullName]map[string]protoreflect.FieldDescriptor),
	}
}

func (d *decoder) errorf(line int, path, format string, args ...any) {
	d.add(Issue{File: d.file, Line: line, Path: path, Msg: fmt.Sprintf(format, args...)})
}

// add records issues, up to maxIssues; the rest are only counted, so that a
// large file of errors cannot produce an error many times its size.
func (d *decoder) add(issues ...Issue) {
	for _, is := range issues {
		if len(d.issues) < maxIssues {
			d.issues = append(d.issues, bounded(is))
		} else {
			d.dropped++
		}
	}
}

// count is the number of issues found so far, shown or not.
func (d *decoder) count() int { return len(d.issues) + d.dropped }

// problems returns the issues sorted by line, followed by a note of how
// many were left out.
func (d *decoder) problems() []Issue {
	issues := d.issues
	sort.SliceStable(issues, func(i, j int) bool { return issues[i].Line < issues[j].Line })
	if d.dropped > 0 {
		issues = append(issues, Issue{File: d.file, Msg: fmt.Sprintf("%d more problems not shown", d.dropped)})
	}
	return issues
}

// mark records that path was written at line.
func (d *decoder) mark(path string, line int) {
	if _, ok := d.lines[path]; !ok {
		d.lines[path] = line
	}
}

// clip shortens a value quoted in a message: input is untrusted and may
// be megabytes long, repeated through aliases.
func clip(s string) string { return clipTo(s, 100) }

// clipTo shortens s to at most limit bytes and "...", at a rune boundary.
func clipTo(s string, limit int) string {
	if len(s) <= limit {
		return s
	}
	i := limit
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "..."
}

// bounded caps the size of an issue, whatever it quotes.
func bounded(is Issue) Issue {
	is.Path = clipTo(is.Path, 1000)
	is.Msg = clipTo(is.Msg, 1000)
	return is
}

// resolve follows aliases. yaml.v3 never anchors an alias, so one hop is
// all there is; the bound only keeps a malformed tree from looping.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; i < 8 && n.Kind == yaml.AliasNode && n.Alias != nil; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// describe names the YAML type of a node for messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!str":
			return fmt.Sprintf("string %q", clip(n.Value))
		case "!!int":
			return "integer " + clip(n.Value)
		case "!!float":
			return "number " + clip(n.Value)
		case "!!bool":
			return "boolean " + n.Value
		case "!!null":
			return "null"
		default:
			return fmt.Sprintf("%s value %q", clip(n.ShortTag()), clip(n.Value))
		}
	}
	return "an unsupported YAML node"
}

// isYAML11Bool reports whether YAML 1.1 reads the plain scalar s as a
// boolean. Kubernetes reads manifests as YAML 1.1, so `values: [yes]` is a
// boolean there and rejected where a string is expected; idgate refuses it
// the same way rather than accept a policy the cluster would not.
func isYAML11Bool(s string) bool {
	switch s {
	case "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO",
		"on", "On", "ON", "off", "Off", "OFF":
		return true
	}
	return false
}

// str reads a scalar that must be a string, as a Kubernetes manifest would
// have it.
func (d *decoder) str(n *yaml.Node, path string) (string, bool) {
	n = resolve(n)
	if n.Kind != yaml.ScalarNode {
		d.errorf(n.Line, path, "must be a string, got %s", describe(n))
		return "", false
	}
	switch n.ShortTag() {
	case "!!str":
		if n.Style == 0 && isYAML11Bool(n.Value) {
			d.errorf(n.Line, path, "%s is a boolean in Kubernetes YAML; quote it: %q", n.Value, n.Value)
			return "", false
		}
		return n.Value, true
	case "!!timestamp":
		// Kubernetes keeps unquoted dates as strings.
		return n.Value, true
	case "!!int", "!!float", "!!bool":
		d.errorf(n.Line, path, "must be a string, got %s; quote it: %q", describe(n), clip(n.Value))
	default:
		d.errorf(n.Line, path, "must be a string, got %s", describe(n))
	}
	return "", false
}

// boolean reads a scalar that must be a boolean.
func (d *decoder) boolean(n *yaml.Node, path string) (bool, bool) {
	n = resolve(n)
	if n.Kind == yaml.ScalarNode {
		if n.ShortTag() == "!!bool" {
			b, err := strconv.ParseBool(strings.ToLower(n.Value))
			if err == nil {
				return b, true
			}
		}
		if n.ShortTag() == "!!str" && n.Style == 0 && isYAML11Bool(n.Value) {
			switch n.Value[0] {
			case 'y', 'Y':
				return true, true
			case 'n', 'N':
				return false, true
			}
			return strings.EqualFold(n.Value, "on"), true
		}
	}
	d.errorf(n.Line, path, "must be true or false, got %s", describe(n))
	return false, false
}

// mapping iterates over the key/value pairs of a mapping node, refusing
// non-string keys, duplicate keys and merge keys. fn gets the key, the
// key's line and the value node.
func (d *decoder) mapping(n *yaml.Node, path string, fn func(key string, line int, value *yaml.Node)) {
	n = resolve(n)
	if n.Kind != yaml.MappingNode {
		d.errorf(n.Line, path, "must be a mapping, got %s", describe(n))
		return
	}
	seen := make(map[string]int, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := resolve(n.Content[i]), n.Content[i+1]
		if kn.Kind == yaml.ScalarNode && kn.ShortTag() == "!!merge" {
			d.errorf(kn.Line, path, "YAML merge keys (<<) are not supported; write the fields out")
			continue
		}
		key, ok := d.str(kn, joinPath(path, "<key>"))
		if !ok {
			continue
		}
		if first, dup := seen[key]; dup {
			d.errorf(kn.Line, joinPath(path, clip(key)), "duplicate field (first at line %d)", first)
			continue
		}
		seen[key] = kn.Line
		fn(key, kn.Line, vn)
	}
}

// sequence iterates over the items of a sequence node.
func (d *decoder) sequence(n *yaml.Node, path string, fn func(i int, item *yaml.Node)) {
	n = resolve(n)
	if n.Kind != yaml.SequenceNode {
		d.errorf(n.Line, path, "must be a list, got %s", describe(n))
		return
	}
	for i, item := range n.Content {
		fn(i, item)
	}
}

// stringMap decodes a mapping of strings to strings (labels, annotations).
func (d *decoder) stringMap(n *yaml.Node, path string) map[string]string {
	if isNull(resolve(n)) {
		return nil
	}
	m := make(map[string]string)
	d.mapping(n, path, func(key string, line int, v *yaml.Node) {
		p := path + "[" + clip(key) + "]"
		d.mark(p, line)
		if s, ok := d.str(v, p); ok {
			m[key] = s
		}
	})
	return m
}

func joinPath(parent, field string) string {
	if parent == "" {
		return field
	}
	return parent + "." + field
}

// fieldsOf returns the names a message's fields may be written with.
func (d *decoder) fieldsOf(md protoreflect.MessageDescriptor) map[string]protoreflect.FieldDescriptor {
	if m, ok := d.fields[md.FullName()]; ok {
		return m
	}
	m := make(map[string]protoreflect.FieldDescriptor)
	fds := md.Fields()
	for i := 0; i < fds.Len(); i++ {
		fd := fds.Get(i)
		m[fd.JSONName()] = fd
		if altFieldName(fd) {
			m[string(fd.Name())] = fd
		}
	}
	d.fields[md.FullName()] = m
	return m
}

// message decodes a mapping node into m, generically over m's descriptor.
func (d *decoder) message(n *yaml.Node, m protoreflect.Message, path string) {
	md := m.Descriptor()
	if isWellKnown(md) {
		d.wellKnown(n, m, path)
		return
	}
	fields := d.fieldsOf(md)
	set := make(map[protoreflect.FieldNumber]string)
	d.mapping(n, path, func(key string, line int, v *yaml.Node) {
		fd, ok := fields[key]
		if !ok {
			msg := "unknown field"
			if s := suggest(key, fieldNames(md)); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			d.errorf(line, joinPath(path, clip(key)), "%s", msg)
			return
		}
		p := joinPath(path, fd.JSONName())
		if other, dup := set[fd.Number()]; dup {
			d.errorf(line, p, "set twice, as %q and %q", other, clip(key))
			return
		}
		set[fd.Number()] = key
		if isNull(resolve(v)) {
			// Kubernetes drops null fields: the same as not writing them.
			return
		}
		d.mark(p, line)
		d.field(v, m, fd, p)
	})
}

// fieldNames lists the JSON names of a message's fields, for suggestions.
func fieldNames(md protoreflect.MessageDescriptor) []string {
	fds := md.Fields()
	names := make([]string, fds.Len())
	for i := range names {
		names[i] = fds.Get(i).JSONName()
	}
	return names
}

func (d *decoder) field(n *yaml.Node, m protoreflect.Message, fd protoreflect.FieldDescriptor, path string) {
	switch {
	case fd.IsList():
		list := m.Mutable(fd).List()
		d.sequence(n, path, func(i int, item *yaml.Node) {
			p := fmt.Sprintf("%s[%d]", path, i)
			d.mark(p, resolve(item).Line)
			if isNull(resolve(item)) {
				d.errorf(resolve(item).Line, p, "must not be null")
				return
			}
			if fd.Kind() == protoreflect.MessageKind {
				e := list.NewElement()
				d.message(item, e.Message(), p)
				list.Append(e)
				return
			}
			if v, ok := d.scalar(item, fd, p); ok {
				list.Append(v)
			}
		})
	case fd.IsMap():
		mp := m.Mutable(fd).Map()
		d.mapping(n, path, func(key string, line int, v *yaml.Node) {
			p := path + "[" + clip(key) + "]"
			d.mark(p, line)
			if fd.MapKey().Kind() != protoreflect.StringKind {
				d.errorf(line, p, "unsupported map key type %s", fd.MapKey().Kind())
				return
			}
			vd := fd.MapValue()
			if vd.Kind() == protoreflect.MessageKind {
				e := mp.NewValue()
				d.message(v, e.Message(), p)
				mp.Set(protoreflect.ValueOfString(key).MapKey(), e)
				return
			}
			if isNull(resolve(v)) {
				d.errorf(line, p, "must not be null")
				return
			}
			if val, ok := d.scalar(v, vd, p); ok {
				mp.Set(protoreflect.ValueOfString(key).MapKey(), val)
			}
		})
	case fd.Kind() == protoreflect.MessageKind:
		d.message(n, m.Mutable(fd).Message(), path)
	default:
		if v, ok := d.scalar(n, fd, path); ok {
			m.Set(fd, v)
		}
	}
}

// scalar decodes a scalar of fd's kind.
func (d *decoder) scalar(n *yaml.Node, fd protoreflect.FieldDescriptor, path string) (protoreflect.Value, bool) {
	switch fd.Kind() {
	case protoreflect.StringKind:
		s, ok := d.str(n, path)
		return protoreflect.ValueOfString(s), ok
	case protoreflect.BoolKind:
		b, ok := d.boolean(n, path)
		return protoreflect.ValueOfBool(b), ok
	case protoreflect.EnumKind:
		return d.enum(n, fd.Enum(), path)
	}
	d.errorf(resolve(n).Line, path, "unsupported field type %s", fd.Kind())
	return protoreflect.Value{}, false
}

// enum decodes an enum value, which Istio's CRD schema accepts by name only.
func (d *decoder) enum(n *yaml.Node, ed protoreflect.EnumDescriptor, path string) (protoreflect.Value, bool) {
	vals := ed.Values()
	names := make([]string, vals.Len())
	for i := range names {
		names[i] = string(vals.Get(i).Name())
	}
	rn := resolve(n)
	if rn.Kind == yaml.ScalarNode && rn.ShortTag() == "!!str" {
		if v := vals.ByName(protoreflect.Name(rn.Value)); v != nil {
			return protoreflect.ValueOfEnum(v.Number()), true
		}
	}
	msg := fmt.Sprintf("must be one of %s, got %s", strings.Join(names, ", "), describe(rn))
	if rn.Kind == yaml.ScalarNode {
		if s := suggest(rn.Value, names); s != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", s)
		}
	}
	d.errorf(rn.Line, path, "%s", msg)
	return protoreflect.Value{}, false
}

func isWellKnown(md protoreflect.MessageDescriptor) bool {
	return md.ParentFile() != nil && md.ParentFile().Package() == "google.protobuf"
}

// wellKnown decodes google.protobuf types (Duration, wrappers, Struct...)
// the way protojson does, so their text forms are exactly Istio's.
func (d *decoder) wellKnown(n *yaml.Node, m protoreflect.Message, path string) {
	rn := resolve(n)
	js, err := json.Marshal(toJSONValue(rn))
	if err == nil {
		err = protojson.Unmarshal(js, m.Interface())
	}
	if err == nil {
		return
	}
	if m.Descriptor().FullName() == "google.protobuf.Duration" {
		msg := fmt.Sprintf(`must be a duration in seconds with an "s" suffix, e.g. "5s" or "0.5s", got %s`, describe(rn))
		if rn.Kind == yaml.ScalarNode {
			if td, perr := time.ParseDuration(rn.Value); perr == nil {
				msg += fmt.Sprintf(" (write %q)", strconv.FormatFloat(td.Seconds(), 'f', -1, 64)+"s")
			}
		}
		d.errorf(rn.Line, path, "%s", msg)
		return
	}
	d.errorf(rn.Line, path, "invalid %s: %v", m.Descriptor().FullName(), err)
}

// toJSONValue converts a YAML node to the value encoding/json would
// produce from the equivalent JSON, for protojson's parsers. Scalars keep
// their text; numbers become json.Number so that nothing is rounded.
func toJSONValue(n *yaml.Node) any {
	n = resolve(n)
	switch n.Kind {
	case yaml.MappingNode:
		obj := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			obj[resolve(n.Content[i]).Value] = toJSONValue(n.Content[i+1])
		}
		return obj
	case yaml.SequenceNode:
		arr := make([]any, len(n.Content))
		for i, c := range n.Content {
			arr[i] = toJSONValue(c)
		}
		return arr
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return nil
		case "!!bool":
			b, _ := strconv.ParseBool(strings.ToLower(n.Value))
			return b
		case "!!int", "!!float":
			if json.Valid([]byte(n.Value)) {
				return json.Number(n.Value)
			}
		}
		return n.Value
	}
	return nil
}

// aliasCheck refuses alias cycles, and inputs whose aliases would expand
// them by more than maxAliasExpansion, before anything is decoded. Sizes
// are weighed in nodes plus the bytes of their values, so that neither
// many small nodes nor one long string repeated through aliases can blow
// up, and memoized per node, so that the check is linear in the input
// however large the expansion would be.
type aliasCheck struct {
	size     map[*yaml.Node]int // expanded weight of each node seen
	visiting map[*yaml.Node]bool
	written  int // weight of the distinct nodes seen
	total    int // expanded weight of everything checked so far
	cycle    *yaml.Node
}

const sizeCap = 1 << 40 // saturates weights so that they cannot overflow

func newAliasCheck() *aliasCheck {
	return &aliasCheck{
		size:     make(map[*yaml.Node]int),
		visiting: make(map[*yaml.Node]bool),
	}
}

func weight(n *yaml.Node) int { return 1 + len(n.Value) }

// expanded returns the weight of n once every alias in it is replaced by
// what it refers to.
func (a *aliasCheck) expanded(n *yaml.Node) int {
	if n == nil || a.cycle != nil {
		return 0
	}
	if s, ok := a.size[n]; ok {
		return s
	}
	if a.visiting[n] {
		a.cycle = n
		return 0
	}
	a.visiting[n] = true
	a.written += weight(n)
	total := weight(n)
	if n.Kind == yaml.AliasNode {
		total = a.expanded(n.Alias)
	}
	for _, c := range n.Content {
		total = min(total+a.expanded(c), sizeCap)
	}
	delete(a.visiting, n)
	a.size[n] = total
	return total
}

// check adds n to what was checked before and returns a message when n
// contains an alias cycle or everything checked so far expands beyond what
// is written by more than maxAliasExpansion.
func (a *aliasCheck) check(n *yaml.Node) (line int, msg string) {
	a.total = min(a.total+a.expanded(n), sizeCap)
	if a.cycle != nil {
		return a.cycle.Line, fmt.Sprintf("YAML anchor %q contains an alias to itself", clip(a.cycle.Anchor))
	}
	if a.total-a.written > maxAliasExpansion {
		return n.Line, "YAML aliases expand this input by more than 1 MiB; refusing it (alias bomb?)"
	}
	return 0, ""
}

// suggest returns the candidate a misspelt name most likely meant, or "".
func suggest(name string, candidates []string) string {
	norm := func(s string) string {
		return strings.ToLower(strings.NewReplacer("_", "", "-", "").Replace(s))
	}
	n := norm(name)
	for _, c := range candidates {
		if norm(c) == n {
			return c
		}
	}
	for _, c := range candidates {
		if nc := norm(c); nc == n+"s" || nc+"s" == n {
			return c
		}
	}
	best, bestDist := "", 0
	for _, c := range candidates {
		dist := levenshtein(n, norm(c))
		limit := 2
		if len(c) > 12 {
			limit = 3
		}
		if dist <= limit && (best == "" || dist < bestDist) {
			best, bestDist = c, dist
		}
	}
	return best
}

// levenshtein is the edit distance between two short names.
func levenshtein(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 1 << 30
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
