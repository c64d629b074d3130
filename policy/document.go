// Package policy loads Istio security documents (RequestAuthentication and
// AuthorizationPolicy) with Istio's own API types, compiles
// AuthorizationPolicies into matchers and evaluates them.
package policy

import (
	"strings"

	securityv1beta1 "istio.io/api/security/v1beta1"
)

// Document is one Istio security document as loaded from YAML.
type Document struct {
	// File is the file it came from; Index its position among the
	// documents of that file (0-based); Line the line its document starts on.
	File  string
	Index int
	Line  int

	APIVersion string // security.istio.io/v1 or security.istio.io/v1beta1
	Kind       string // RequestAuthentication or AuthorizationPolicy

	Name        string
	Namespace   string // "default" when the document names none
	Labels      map[string]string
	Annotations map[string]string

	// Exactly one of these is set, according to Kind.
	RequestAuthentication *securityv1beta1.RequestAuthentication
	AuthorizationPolicy   *securityv1beta1.AuthorizationPolicy

	// DryRun is set by the annotation istio.io/dry-run: "true" on an
	// AuthorizationPolicy: the policy is evaluated and logged, never
	// enforced.
	DryRun bool

	// Warnings are what Istio's validation warns about in the document:
	// valid, but probably not what was meant.
	Warnings []Issue

	// lines maps field paths ("spec.rules[0].from") to the lines they
	// were written on.
	lines map[string]int
}

// FieldLine returns the line a field was written on, given its path as
// issues print it (e.g. "spec.rules[0].from[0].source.principals[1]").
// For a path that was not written it returns the line of the closest
// enclosing field that was, and at least the document's line.
func (d *Document) FieldLine(path string) int {
	for path != "" {
		if l, ok := d.lines[path]; ok {
			return l
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return d.Line
}

// ID returns "namespace/name", the form decisions name policies in.
func (d *Document) ID() string { return d.Namespace + "/" + d.Name }
