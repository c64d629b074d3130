package policy

import (
	"errors"
	"slices"
	"strings"
	"testing"

	securityv1beta1 "istio.io/api/security/v1beta1"
)

// apDoc builds an AuthorizationPolicy document without the loader, as a
// program embedding idgate would, so that Compile is tested on input the
// loader's validation never sees.
func apDoc(name string, spec *securityv1beta1.AuthorizationPolicy) *Document {
	return &Document{
		File:                "policies.yaml",
		Line:                1,
		APIVersion:          APIVersionV1,
		Kind:                KindAuthorizationPolicy,
		Name:                name,
		Namespace:           "foo",
		AuthorizationPolicy: spec,
	}
}

func whenRule(key string, values ...string) *securityv1beta1.Rule {
	return &securityv1beta1.Rule{When: []*securityv1beta1.Condition{{Key: key, Values: values}}}
}

func TestCompileRejects(t *testing.T) {
	allow := func(rules ...*securityv1beta1.Rule) *securityv1beta1.AuthorizationPolicy {
		return &securityv1beta1.AuthorizationPolicy{Rules: rules}
	}
	cases := []struct {
		name string
		spec *securityv1beta1.AuthorizationPolicy
		want string // in the error, after "policies.yaml:1: "
	}{
		{"unknown condition key", allow(whenRule("request.method", "GET")), `spec.rules[0].when[0].key: policy foo/p: unknown condition key "request.method"`},
		{"experimental keys are unsupported", allow(whenRule("experimental.envoy.filters.network.mysql_proxy[db.table]", "[update]")), "reads Envoy filter metadata, which idgate does not have"},
		{"destination.labels", allow(whenRule("destination.labels[app]", "x")), "use the selector"},
		{"header key without brackets", allow(whenRule("request.headers", "x")), "request.headers[<name>]"},
		{"header key with empty brackets", allow(whenRule("request.headers[]", "x")), "request.headers[<name>]"},
		{"claim key without brackets", allow(whenRule("request.auth.claims.groups", "x")), "request.auth.claims[<name>]"},
		{"claim key with an empty segment", allow(whenRule("request.auth.claims[a][]", "x")), "request.auth.claims[<name>]"},
		{"condition without values", allow(&securityv1beta1.Rule{When: []*securityv1beta1.Condition{{Key: "source.ip"}}}), "neither values nor notValues"},
		{"bad IP", allow(whenRule("source.ip", "10.0.0.300")), `spec.rules[0].when[0].values[0]: policy foo/p: bad IP address "10.0.0.300"`},
		{"bad CIDR", allow(&securityv1beta1.Rule{From: []*securityv1beta1.Rule_From{{Source: &securityv1beta1.Source{IpBlocks: []string{"10.0.0.0/33"}}}}}), `spec.rules[0].from[0].source.ipBlocks[0]: policy foo/p: bad CIDR range "10.0.0.0/33"`},
		{"bad port", allow(&securityv1beta1.Rule{To: []*securityv1beta1.Rule_To{{Operation: &securityv1beta1.Operation{Ports: []string{"65536"}}}}}), `spec.rules[0].to[0].operation.ports[0]: policy foo/p: bad port "65536"`},
		{"port wildcard", allow(whenRule("destination.port", "80*")), `bad port "80*"`},
		{"template operator inside a segment", allow(&securityv1beta1.Rule{To: []*securityv1beta1.Rule_To{{Operation: &securityv1beta1.Operation{Paths: []string{"/a/{*}.txt"}}}}}), `segment "{*}.txt" is neither`},
		{"template after {**}", allow(&securityv1beta1.Rule{To: []*securityv1beta1.Rule_To{{Operation: &securityv1beta1.Operation{NotPaths: []string{"/{**}/{*}"}}}}}), "spec.rules[0].to[0].operation.notPaths[0]: policy foo/p: path template \"/{**}/{*}\": {**} must be the last operator"},
		{"template with an empty segment", allow(&securityv1beta1.Rule{To: []*securityv1beta1.Rule_To{{Operation: &securityv1beta1.Operation{Paths: []string{"/a//{*}"}}}}}), "has an empty segment"},
		{"template with a stray star", allow(&securityv1beta1.Rule{To: []*securityv1beta1.Rule_To{{Operation: &securityv1beta1.Operation{Paths: []string{"/*/x/{*}"}}}}}), `segment "*" is neither`},
		{"template not starting with a slash", allow(&securityv1beta1.Rule{To: []*securityv1beta1.Rule_To{{Operation: &securityv1beta1.Operation{Paths: []string{"{*}/x"}}}}}), "must start with '/'"},
		{"service account wildcard", allow(&securityv1beta1.Rule{From: []*securityv1beta1.Rule_From{{Source: &securityv1beta1.Source{ServiceAccounts: []string{"ns/*"}}}}}), "without wildcards"},
		{"null rule", allow(nil), "spec.rules[0]: policy foo/p: rule is null"},
		{"from without source", allow(&securityv1beta1.Rule{From: []*securityv1beta1.Rule_From{{}}}), "spec.rules[0].from[0]: policy foo/p: from entry has no source"},
		{"to without operation", allow(&securityv1beta1.Rule{To: []*securityv1beta1.Rule_To{{}}}), "spec.rules[0].to[0]: policy foo/p: to entry has no operation"},
		{"unknown action", &securityv1beta1.AuthorizationPolicy{Action: 7, Rules: []*securityv1beta1.Rule{{}}}, "spec.action: policy foo/p: unknown action 7"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			set, err := Compile([]*Document{apDoc("p", c.spec)})
			var le *LoadError
			if !errors.As(err, &le) {
				t.Fatalf("Compile = %v, %v; want a *LoadError", set, err)
			}
			if set != nil {
				t.Errorf("Compile returned a set along with an error")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not say %q", err, c.want)
			}
		})
	}
}

// CUSTOM policies of one workload name one provider (Istio denies
// CUSTOM-matched requests otherwise: builder.go getBadCustomDenyRules).
func TestCompileRejectsSeveralCustomProviders(t *testing.T) {
	custom := func(name, provider string) *Document {
		return apDoc(name, &securityv1beta1.AuthorizationPolicy{
			Action:       securityv1beta1.AuthorizationPolicy_CUSTOM,
			ActionDetail: &securityv1beta1.AuthorizationPolicy_Provider{Provider: &securityv1beta1.AuthorizationPolicy_ExtensionProvider{Name: provider}},
			Rules:        []*securityv1beta1.Rule{{}},
		})
	}
	if _, err := Compile([]*Document{custom("a", "idgate"), custom("b", "idgate")}); err != nil {
		t.Fatalf("one provider: %v", err)
	}
	_, err := Compile([]*Document{custom("a", "idgate"), custom("b", "opa")})
	if err == nil || !strings.Contains(err.Error(), `name one provider; these name "idgate", "opa"`) {
		t.Fatalf("two providers: %v", err)
	}
}

func TestCompileReportsEveryProblem(t *testing.T) {
	_, err := Compile([]*Document{
		apDoc("a", &securityv1beta1.AuthorizationPolicy{Rules: []*securityv1beta1.Rule{whenRule("nope", "x"), whenRule("source.ip", "x")}}),
		apDoc("b", &securityv1beta1.AuthorizationPolicy{Rules: []*securityv1beta1.Rule{whenRule("destination.port", "http")}}),
	})
	var le *LoadError
	if !errors.As(err, &le) || len(le.Issues) != 3 {
		t.Fatalf("want 3 issues, got %v", err)
	}
}

func TestCompileSkipsRequestAuthentication(t *testing.T) {
	ra := &Document{Kind: KindRequestAuthentication, Name: "jwt", Namespace: "foo", RequestAuthentication: &securityv1beta1.RequestAuthentication{}}
	set, err := Compile([]*Document{ra, nil})
	if err != nil {
		t.Fatal(err)
	}
	if d := set.Evaluate(nil, nil, nil); d.Reason != AllowedNoPolicies {
		t.Errorf("RequestAuthentication alone: %s, want %s", d.Reason, AllowedNoPolicies)
	}
}

// Patterns the loader's validation refuses as ambiguous still compile the
// way Istio reads them, for documents that do not come from the loader
// (matcher/string.go StringMatcherWithPrefix; generator.go
// srcNamespaceGenerator).
func TestCompileIstioReadingOfOddPatterns(t *testing.T) {
	spec := &securityv1beta1.AuthorizationPolicy{Rules: []*securityv1beta1.Rule{
		{To: []*securityv1beta1.Rule_To{{Operation: &securityv1beta1.Operation{Paths: []string{"/a*b"}}}}},
		{To: []*securityv1beta1.Rule_To{{Operation: &securityv1beta1.Operation{Paths: []string{"*mid*"}}}}},
		{From: []*securityv1beta1.Rule_From{{Source: &securityv1beta1.Source{Namespaces: []string{"team-*-prod"}}}}},
	}}
	set, err := Compile([]*Document{apDoc("odd", spec)})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		path, ns string
		rule     int // -1: denied
	}{
		{"/a*b", "", 0},    // a '*' inside is a literal
		{"/aXb", "", -1},   //
		{"/x/mid*", "", 1}, // leading '*' first: suffix "mid*"
		{"/x/mid", "", -1},
		{"/", "team-a-prod", 2}, // namespaces: '*' anywhere
		{"/", "team-a-b-prod", 2},
		{"/", "team-prod", -1},
	}
	for _, c := range cases {
		a := attrs("GET", c.path)
		if c.ns != "" {
			a.SourcePrincipal = "cluster.local/ns/" + c.ns + "/sa/x"
			a.SourceNamespace = c.ns
		}
		d := set.Evaluate(a, nil, nil)
		switch {
		case c.rule < 0 && d.Allowed:
			t.Errorf("%s %s: allowed by rule %d, want denied", c.path, c.ns, d.By.Rule)
		case c.rule >= 0 && (!d.Allowed || d.By.Rule != c.rule):
			t.Errorf("%s %s: %s rule %d, want allowed by rule %d", c.path, c.ns, d.Reason, d.By.Rule, c.rule)
		}
	}
}

// Claims names every top-level claim some rule reads, dry-run policies
// included, once each.
func TestSetClaims(t *testing.T) {
	docs, err := Parse("claims.yaml", []byte(`
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: a, namespace: ns}
spec:
  rules:
  - when:
    - {key: "request.auth.claims[roles]", values: [admin]}
    - {key: "request.auth.claims[address][country]", notValues: [XX]}
  - to: [{operation: {paths: [/x]}}]
    when: [{key: "request.auth.claims[roles]", values: [reader]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: b
  namespace: ns
  annotations: {istio.io/dry-run: "true"}
spec:
  action: DENY
  rules:
  - when: [{key: "request.auth.claims[tid]", notValues: [t1]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: c, namespace: ns}
spec:
  rules:
  - from: [{source: {requestPrincipals: ["*"]}}]
`))
	if err != nil {
		t.Fatal(err)
	}
	set, err := Compile(docs)
	if err != nil {
		t.Fatal(err)
	}
	if got := set.Claims(); !slices.Equal(got, []string{"address", "roles", "tid"}) {
		t.Errorf("Claims() = %q", got)
	}
}
