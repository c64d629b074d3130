// Package policy loads Istio security documents (RequestAuthentication and
// AuthorizationPolicy) with Istio's own API types, compiles
// AuthorizationPolicies into matchers and evaluates them.
package policy

import (
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
}

// ID returns "namespace/name", the form decisions name policies in.
func (d *Document) ID() string { return d.Namespace + "/" + d.Name }
