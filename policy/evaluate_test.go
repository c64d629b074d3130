package policy

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/idgate/idgate/request"
)

// The files in testdata/eval hold the semantic rules idgate reproduces,
// one suite per rule, each naming its source (istio-semantics.md section,
// Istio documentation page or integration test). A suite is a set of
// policies and requests with the decision Istio makes for each.

type evalSuite struct {
	Name     string     `yaml:"name"`
	Source   string     `yaml:"source"`
	Policies yaml.Node  `yaml:"policies"`
	Cases    []evalCase `yaml:"cases"`
}

type evalCase struct {
	Name     string        `yaml:"name"`
	Request  evalRequest   `yaml:"request"`
	Identity *evalIdentity `yaml:"identity"` // absent: anonymous
	Want     evalWant      `yaml:"want"`
	// Trace lists lines that must appear in the trace's String().
	Trace []string `yaml:"trace"`
}

type evalRequest struct {
	Method          string         `yaml:"method"` // default GET
	Host            string         `yaml:"host"`   // default example.com
	Path            string         `yaml:"path"`   // request target, default "/"; normalized
	Scheme          string         `yaml:"scheme"`
	Headers         map[string]any `yaml:"headers"`  // string or list of strings
	SourceIP        string         `yaml:"sourceIP"` // default 127.0.0.1; "none": unknown
	RemoteIP        string         `yaml:"remoteIP"` // default SourceIP; "none": unknown
	DestinationIP   string         `yaml:"destinationIP"`
	Port            int            `yaml:"port"`
	SNI             string         `yaml:"sni"`
	SourcePrincipal string         `yaml:"sourcePrincipal"`
	SourceNamespace string         `yaml:"sourceNamespace"`
}

type evalIdentity struct {
	Iss    string         `yaml:"iss"`
	Sub    string         `yaml:"sub"`
	Aud    []string       `yaml:"aud"`
	Azp    string         `yaml:"azp"`
	Claims map[string]any `yaml:"claims"`
}

type evalWant struct {
	Status int    `yaml:"status"`
	Reason Reason `yaml:"reason"`
	Policy string `yaml:"policy"` // deciding policy; "" for none
	Rule   int    `yaml:"rule"`
	Custom string `yaml:"custom"` // matching CUSTOM policy
	Audit  string `yaml:"audit"`  // matching AUDIT policy
	// DryRun is the dry-run outcome, "" when the set has no dry-run policy:
	// "<status> <reason> [<policy>]".
	DryRun string `yaml:"dryRun"`
}

func TestEvaluateSemantics(t *testing.T) {
	files, err := filepath.Glob("testdata/eval/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no test files: %v", err)
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var suites []evalSuite
		if err := yaml.Unmarshal(data, &suites); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		for _, suite := range suites {
			t.Run(strings.TrimSuffix(filepath.Base(file), ".yaml")+"/"+suite.Name, func(t *testing.T) {
				if suite.Source == "" {
					t.Errorf("suite %q names no source", suite.Name)
				}
				docs, err := ParseNodes(file, suite.Policies.Content)
				if err != nil {
					t.Fatalf("policies: %v", err)
				}
				set, err := Compile(docs)
				if err != nil {
					t.Fatalf("Compile: %v", err)
				}
				for _, c := range suite.Cases {
					t.Run(c.Name, func(t *testing.T) { runEvalCase(t, set, c) })
				}
			})
		}
	}
}

func runEvalCase(t *testing.T, set *Set, c evalCase) {
	t.Helper()
	a := c.Request.attributes(t)
	id := c.Identity.identity()

	var tr Trace
	d := set.Evaluate(a, id, &tr)
	plain := set.Evaluate(a, id, nil)
	if plain != d {
		t.Errorf("decision with trace %+v differs from decision without %+v", d, plain)
	}
	if tr.Decision != d {
		t.Errorf("trace holds decision %+v, Evaluate returned %+v", tr.Decision, d)
	}
	w := c.Want
	if d.Status != w.Status || d.Reason != w.Reason || d.By.Policy != w.Policy || d.By.Rule != w.Rule {
		t.Errorf("got %d %s by %q rule %d; want %d %s by %q rule %d\n%s",
			d.Status, d.Reason, d.By.Policy, d.By.Rule, w.Status, w.Reason, w.Policy, w.Rule, tr.String())
	}
	if d.Allowed != (w.Status == http.StatusOK) {
		t.Errorf("Allowed = %v with status %d", d.Allowed, d.Status)
	}
	if d.Custom.Policy != w.Custom {
		t.Errorf("custom match %q, want %q", d.Custom.Policy, w.Custom)
	}
	if d.Audit.Policy != w.Audit {
		t.Errorf("audit match %q, want %q", d.Audit.Policy, w.Audit)
	}
	gotDry := ""
	if d.HasDryRun() {
		gotDry = fmt.Sprintf("%d %s", d.DryRun.Status, d.DryRun.Reason)
		if d.DryRun.By.Matched() {
			gotDry += " " + d.DryRun.By.Policy
		}
	}
	if gotDry != w.DryRun {
		t.Errorf("dry-run outcome %q, want %q", gotDry, w.DryRun)
	}
	s := tr.String()
	for _, line := range c.Trace {
		if !strings.Contains(s, line) {
			t.Errorf("trace lacks %q:\n%s", line, s)
		}
	}
}

func (r evalRequest) attributes(t *testing.T) *request.Attributes {
	t.Helper()
	target := r.Path
	if target == "" {
		target = "/"
	}
	path, err := request.NormalizePath(target)
	if err != nil {
		t.Fatalf("request path: %v", err)
	}
	a := &request.Attributes{
		Method:          r.Method,
		Host:            r.Host,
		Path:            path,
		Scheme:          r.Scheme,
		Header:          http.Header{},
		DestinationPort: r.Port,
		SNI:             r.SNI,
		SourcePrincipal: r.SourcePrincipal,
		SourceNamespace: r.SourceNamespace,
	}
	if i := strings.IndexByte(target, '?'); i >= 0 {
		a.Query = target[i+1:]
	}
	if a.Method == "" {
		a.Method = http.MethodGet
	}
	if a.Host == "" {
		a.Host = "example.com"
	}
	if a.Scheme == "" {
		a.Scheme = "http"
	}
	for name, v := range r.Headers {
		switch v := v.(type) {
		case string:
			a.Header.Add(name, v)
		case []any:
			for _, el := range v {
				a.Header.Add(name, fmt.Sprint(el))
			}
		default:
			t.Fatalf("header %s: want a string or a list", name)
		}
	}
	addr := func(s string) netip.Addr {
		if s == "" || s == "none" {
			return netip.Addr{}
		}
		ip, err := netip.ParseAddr(s)
		if err != nil {
			t.Fatal(err)
		}
		return ip
	}
	if r.SourceIP == "" {
		r.SourceIP = "127.0.0.1"
	}
	a.SourceIP = addr(r.SourceIP)
	a.RemoteIP = a.SourceIP
	if r.RemoteIP != "" {
		a.RemoteIP = addr(r.RemoteIP)
	}
	a.DestinationIP = addr(r.DestinationIP)
	return a
}

// identity builds the verified identity authentication would hand over:
// claims as the token carried them, numbers as json.Number.
func (i *evalIdentity) identity() *request.Identity {
	if i == nil {
		return nil
	}
	claims := map[string]any{}
	for k, v := range i.Claims {
		claims[k] = jsonClaim(v)
	}
	set := func(k string, v any) {
		if _, ok := claims[k]; !ok {
			claims[k] = v
		}
	}
	if i.Iss != "" {
		set("iss", i.Iss)
	}
	if i.Sub != "" {
		set("sub", i.Sub)
	}
	if len(i.Aud) > 0 {
		auds := make([]any, len(i.Aud))
		for k, a := range i.Aud {
			auds[k] = a
		}
		set("aud", auds)
	}
	if i.Azp != "" {
		set("azp", i.Azp)
	}
	return &request.Identity{
		Issuer:    i.Iss,
		Subject:   i.Sub,
		Audiences: i.Aud,
		Presenter: i.Azp,
		Claims:    request.ClaimsOf(claims),
	}
}

func jsonClaim(v any) any {
	switch v := v.(type) {
	case int:
		return json.Number(fmt.Sprint(v))
	case float64:
		return json.Number(fmt.Sprint(v))
	case []any:
		out := make([]any, len(v))
		for i, el := range v {
			out[i] = jsonClaim(el)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, el := range v {
			out[k] = jsonClaim(el)
		}
		return out
	}
	return v
}
