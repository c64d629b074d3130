package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	securityv1beta1 "istio.io/api/security/v1beta1"

	"github.com/idgate/idgate/diagnose"
	"github.com/idgate/idgate/engine"
	"github.com/idgate/idgate/keyset"
	"github.com/idgate/idgate/policy"
	"github.com/idgate/idgate/policytest"
	"github.com/idgate/idgate/token"
)

type explainFlags struct {
	policies []string
	method   string
	url      string
	headers  []string
	sourceIP string
	remoteIP string
	raw      string
	claims   string
	tokenIn  string
	jwks     string
	at       int64
	output   string
}

func newExplainCmd() *cobra.Command {
	var f explainFlags
	cmd := &cobra.Command{
		Use:   "explain --policies PATH [request flags] [--token RAW | --claims JSON]",
		Short: "Show the decision for one request, policy by policy and rule by rule, with Entra-aware hints",
		Long: `Decide one request against Istio policies and explain the decision: what
authentication found and why it accepted or rejected the token, how every
AuthorizationPolicy rule matched or failed, and hints for the classic Entra ID
mistakes (v1/v2 issuers, audience forms, scp not split, groups overage).

The token is either a real one (--token, verified with --jwks or with each
jwtRule's own jwks/jwksUri) or claims minted for a test key that every
jwtRule trusts (--claims; exp, nbf and iat may be "now+N" or "now-N").

Exit status: 0 allowed; 1 denied (401 or 403); 2 bad usage or policies.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runExplain(cmd, f)
		},
	}
	fl := cmd.Flags()
	fl.StringArrayVarP(&f.policies, "policies", "p", nil, "Istio policy file or directory (repeatable, required)")
	fl.StringVarP(&f.method, "method", "X", "GET", "request method")
	fl.StringVar(&f.url, "url", "http://example.com/", "request URL: scheme, host, port, path and query")
	fl.StringArrayVarP(&f.headers, "header", "H", nil, `request header "Name: value" (repeatable)`)
	fl.StringVar(&f.sourceIP, "source-ip", "127.0.0.1", "the TCP peer (source.ip)")
	fl.StringVar(&f.remoteIP, "remote-ip", "", "the original client (remote.ip); default: the source IP")
	fl.StringVar(&f.raw, "token", "", "a real token (\"-\" reads it from stdin)")
	fl.StringVar(&f.claims, "claims", "", "claims (JSON) of a token to mint with a test key")
	fl.StringVar(&f.tokenIn, "token-in", "", "where the token goes: header:NAME[:PREFIX], query:NAME or cookie:NAME (default: Authorization: Bearer)")
	fl.StringVar(&f.jwks, "jwks", "", "JWK Set file that every jwtRule trusts (with --token)")
	fl.Int64Var(&f.at, "at", 0, "check the token as of this unix time (with --token)")
	fl.StringVarP(&f.output, "output", "o", "", "output format: json")
	return cmd
}

func runExplain(cmd *cobra.Command, f explainFlags) error {
	if len(f.policies) == 0 {
		return usageErrorf("explain: --policies is required")
	}
	if f.output != "" && f.output != "json" {
		return usageErrorf("explain: -o takes json, not %q", f.output)
	}
	if f.raw != "" && f.claims != "" {
		return usageErrorf("explain: give --token or --claims, not both")
	}
	if (f.jwks != "" || f.at != 0) && f.raw == "" {
		return usageErrorf("explain: --jwks and --at go with --token")
	}
	sets, err := loadPolicySets(f.policies)
	var docs []*policy.Document
	for _, set := range sets {
		docs = append(docs, set...)
	}
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("explain: %v", err)}
	}
	c, err := explainCase(cmd.InOrStdin(), f)
	if err != nil {
		return usageErrorf("explain: %v", err)
	}
	var keys policytest.Keys
	switch {
	case f.jwks != "":
		data, err := os.ReadFile(f.jwks)
		if err != nil {
			return usageErrorf("explain: --jwks: %v", err)
		}
		if keys.Trusted, err = token.ParseJWKS(data); err != nil {
			return usageErrorf("explain: --jwks %s: %v", f.jwks, err)
		}
	case f.raw != "":
		keys.PerRule = ruleKeys
	}
	suite, err := policytest.NewSuite(&policytest.File{Path: "explain"}, docs, keys)
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("explain: %v", err)}
	}
	d, err := suite.Decide(cmd.Context(), c)
	if err != nil {
		return usageErrorf("explain: the request cannot be authorized (400): %v", err)
	}
	hints := diagnose.Hints(d, docs)
	out := cmd.OutOrStdout()
	if f.output == "json" {
		writeExplainJSON(out, d, hints)
	} else {
		io.WriteString(out, d.String())
		for _, h := range hints {
			fmt.Fprintf(out, "hint: %s\n", h)
		}
	}
	if !d.Allowed {
		return &exitError{code: 1}
	}
	return nil
}

// ruleKeys gives a jwtRule its own keys: its inline jwks, or its jwksUri
// fetched now. (A rule with neither is given none, and its tokens fail
// with unknown_kid.)
func ruleKeys(r *securityv1beta1.JWTRule) (token.KeySource, error) {
	switch {
	case r.GetJwks() != "":
		return keyset.New(keyset.Config{JWKS: []byte(r.GetJwks()), Logger: quietLogger()})
	case r.GetJwksUri() != "":
		return keyset.New(keyset.Config{JWKSURI: r.GetJwksUri(), Logger: quietLogger()})
	case r.GetIssuer() != "":
		return keyset.New(keyset.Config{Issuer: r.GetIssuer(), Discovery: true, Logger: quietLogger()})
	}
	return token.StaticKeys(nil), nil
}

// explainCase turns the request flags into a test case.
func explainCase(stdin io.Reader, f explainFlags) (*policytest.Case, error) {
	u, err := url.Parse(f.url)
	if err != nil {
		return nil, fmt.Errorf("--url: %v", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("--url %q: want an http or https URL", f.url)
	}
	r := policytest.Request{
		Method:   f.method,
		Scheme:   u.Scheme,
		Host:     u.Host,
		Path:     u.EscapedPath(),
		SourceIP: f.sourceIP,
		RemoteIP: f.remoteIP,
		Headers:  map[string]string{},
		Token:    policytest.TokenSpec{Kind: policytest.TokenNone},
	}
	if r.Path == "" {
		r.Path = "/"
	}
	if u.RawQuery != "" {
		r.Path += "?" + u.RawQuery
	}
	if p := u.Port(); p != "" {
		if r.Port, err = strconv.Atoi(p); err != nil {
			return nil, fmt.Errorf("--url: bad port %q", p)
		}
	}
	for _, h := range f.headers {
		name, value, ok := strings.Cut(h, ":")
		if !ok || strings.TrimSpace(name) == "" {
			return nil, fmt.Errorf("--header %q: want \"Name: value\"", h)
		}
		key := strings.ToLower(strings.TrimSpace(name))
		value = strings.TrimSpace(value)
		if old, dup := r.Headers[key]; dup {
			value = old + "," + value
		}
		r.Headers[key] = value
	}
	switch {
	case f.raw == "-":
		data, err := io.ReadAll(io.LimitReader(stdin, 1<<20))
		if err != nil {
			return nil, fmt.Errorf("read token from stdin: %v", err)
		}
		r.Token = policytest.TokenSpec{Kind: policytest.TokenRaw, Raw: strings.TrimSpace(string(data)), At: f.at}
	case f.raw != "":
		r.Token = policytest.TokenSpec{Kind: policytest.TokenRaw, Raw: f.raw, At: f.at}
	case f.claims != "":
		var claims map[string]any
		dec := json.NewDecoder(strings.NewReader(f.claims))
		dec.UseNumber()
		if err := dec.Decode(&claims); err != nil {
			return nil, fmt.Errorf("--claims: not a JSON object: %v", err)
		}
		for _, name := range []string{"exp", "nbf", "iat"} {
			if n, ok := claims[name].(json.Number); ok {
				v, err := n.Int64()
				if err != nil {
					return nil, fmt.Errorf("--claims: %s: %v", name, err)
				}
				claims[name] = v
			}
			if v, ok := claims[name]; ok {
				if _, err := policytest.RelativeTime(v, 0); err != nil {
					return nil, fmt.Errorf("--claims: %s: %v", name, err)
				}
			}
		}
		r.Token = policytest.TokenSpec{Kind: policytest.TokenClaims, Claims: claims}
	}
	if f.tokenIn != "" {
		if r.TokenIn, err = parsePlacement(f.tokenIn); err != nil {
			return nil, err
		}
	}
	return &policytest.Case{Name: "explain", Request: r}, nil
}

// parsePlacement reads --token-in: header:NAME[:PREFIX], query:NAME or
// cookie:NAME.
func parsePlacement(s string) (policytest.Placement, error) {
	kind, rest, _ := strings.Cut(s, ":")
	var pl policytest.Placement
	switch kind {
	case "header":
		name, prefix, hasPrefix := strings.Cut(rest, ":")
		pl.Header = name
		if hasPrefix {
			pl.Prefix = &prefix
		}
	case "query":
		pl.Query = rest
	case "cookie":
		pl.Cookie = rest
	default:
		return pl, fmt.Errorf("--token-in %q: want header:NAME[:PREFIX], query:NAME or cookie:NAME", s)
	}
	if rest == "" {
		return pl, fmt.Errorf("--token-in %q: the name is missing", s)
	}
	return pl, nil
}

// explainRecord is the output of `idgate explain -o json`.
type explainRecord struct {
	Allowed       bool             `json:"allowed"`
	Status        int              `json:"status"`
	Reason        string           `json:"reason"`
	Detail        string           `json:"detail,omitempty"`
	Policy        string           `json:"policy,omitempty"`
	Rule          *int             `json:"rule,omitempty"`
	Principal     string           `json:"principal,omitempty"`
	Claims        map[string]any   `json:"claims,omitempty"`
	Tokens        []explainToken   `json:"tokens"`
	Authorization *json.RawMessage `json:"authorization,omitempty"`
	Hints         []string         `json:"hints"`
}

type explainToken struct {
	Location  string         `json:"location"`
	Issuer    string         `json:"unverifiedIssuer,omitempty"`
	Audiences []string       `json:"unverifiedAudiences,omitempty"`
	Checks    []explainCheck `json:"checks"`
}

type explainCheck struct {
	Policy string `json:"policy"`
	Rule   int    `json:"rule"`
	Issuer string `json:"issuer"`
	Code   string `json:"code,omitempty"`
	Detail string `json:"detail,omitempty"`
}

func writeExplainJSON(w io.Writer, d engine.Decision, hints []string) {
	rec := explainRecord{
		Allowed: d.Allowed, Status: d.Status, Reason: d.Reason, Detail: d.Detail, Policy: d.Policy,
		Tokens: []explainToken{}, Hints: hints,
	}
	if rec.Hints == nil {
		rec.Hints = []string{}
	}
	if d.Policy != "" && d.Rule >= 0 {
		rule := d.Rule
		rec.Rule = &rule
	}
	if d.Identity != nil {
		rec.Principal, rec.Claims = d.Identity.Principal(), d.Identity.Claims.Map()
	}
	for _, t := range d.Authn.Tokens {
		et := explainToken{Location: t.Location.String(), Issuer: t.UnverifiedIssuer, Audiences: t.UnverifiedAudiences, Checks: []explainCheck{}}
		for _, c := range t.Checks {
			ec := explainCheck{Policy: c.Rule.Policy, Rule: c.Rule.Index, Issuer: c.Rule.Issuer}
			if c.Err != nil {
				ec.Code, ec.Detail = string(c.Err.Code), c.Err.Detail
			}
			et.Checks = append(et.Checks, ec)
		}
		rec.Tokens = append(rec.Tokens, et)
	}
	if d.Trace != nil && (d.Authn.Status == 200 || d.Authz.Custom.Matched()) {
		if data, err := json.Marshal(d.Trace); err == nil {
			raw := json.RawMessage(data)
			rec.Authorization = &raw
		}
	}
	data, _ := json.MarshalIndent(rec, "", "  ")
	fmt.Fprintf(w, "%s\n", data)
}
