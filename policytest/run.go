package policytest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"gopkg.in/yaml.v3"
	securityv1beta1 "istio.io/api/security/v1beta1"

	"github.com/idgate/idgate/engine"
	"github.com/idgate/idgate/mint"
	"github.com/idgate/idgate/policy"
	"github.com/idgate/idgate/request"
	"github.com/idgate/idgate/token"
)

// The claims the generated failure tokens use where the file does not say.
const (
	wrongIssuer   = "https://wrong-issuer.idgate.invalid/"
	wrongAudience = "idgate-wrong-audience"
	defaultSub    = "test-subject"
	malformed     = "not.a.jwt"
)

// Suite is a test file ready to run: its policies compiled, its keys made.
type Suite struct {
	File *File
	Docs []*policy.Document

	engine *engine.Engine
	// key signs the tokens cases ask for; impostor has key's kid but is
	// not trusted. Both are nil when the file brings its own JWKS, and
	// then only raw tokens can be sent.
	key, impostor *mint.Key
	defaults      map[string]any
	// now is the unix time the engine sees, set per case.
	now atomic.Int64
}

// Load reads a test file and prepares it to run. Errors are *LoadError
// (the test file) or *policy.LoadError (its policies).
func Load(path string) (*Suite, error) {
	f, err := ReadFile(path)
	if err != nil {
		return nil, err
	}
	docs, err := f.Documents()
	if err != nil {
		return nil, err
	}
	var trusted []token.Key
	switch {
	case f.JWKS != nil:
		data, err := jwksJSON(f.JWKS)
		if err == nil {
			trusted, err = token.ParseJWKS(data)
		}
		if err != nil {
			return nil, &LoadError{File: path, Line: f.JWKS.Line, Msg: "jwks: " + err.Error()}
		}
	case f.JWKSFile != "":
		p := f.JWKSFile
		if !filepath.IsAbs(p) {
			p = filepath.Join(filepath.Dir(path), p)
		}
		data, err := os.ReadFile(p)
		if err == nil {
			trusted, err = token.ParseJWKS(data)
		}
		if err != nil {
			return nil, &LoadError{File: path, Msg: "jwks_file: " + err.Error()}
		}
	}
	s, err := NewSuite(f, docs, Keys{Trusted: trusted})
	if err != nil {
		return nil, &LoadError{File: path, Msg: err.Error()}
	}
	for _, c := range f.Cases {
		for _, t := range c.tokens() {
			if s.key == nil && t.Token.Kind != TokenNone && t.Token.Kind != TokenRaw && t.Token.Kind != TokenMalformed {
				return nil, &LoadError{File: path, Line: c.Line, Msg: fmt.Sprintf("case %q asks for a %s token, but the file trusts its own jwks, whose private keys the runner does not have; use {raw: ...} tokens", c.Name, t.Token.Kind)}
			}
		}
	}
	return s, nil
}

// Documents loads the file's policies: the embedded ones, then those of
// its policy_files.
func (f *File) Documents() ([]*policy.Document, error) {
	docs, err := policy.ParseNodes(f.Path, f.Policies)
	if err != nil {
		return nil, err
	}
	if len(f.PolicyFiles) == 0 {
		return docs, nil
	}
	var paths []string
	for _, p := range f.PolicyFiles {
		if !filepath.IsAbs(p) {
			p = filepath.Join(filepath.Dir(f.Path), p)
		}
		paths = append(paths, p)
	}
	more, err := policy.Load(paths...)
	if err != nil {
		return nil, err
	}
	return append(docs, more...), nil
}

// IsTestFile reports whether the YAML file at path looks like a policy
// test file (a mapping with "cases") rather than Istio documents.
func IsTestFile(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	var top map[string]yaml.Node
	if err := yaml.NewDecoder(io.LimitReader(f, maxFileSize)).Decode(&top); err != nil {
		return false
	}
	_, cases := top["cases"]
	_, apiVersion := top["apiVersion"]
	return cases && !apiVersion
}

// jwksJSON turns an inline JWK Set written in YAML into JSON.
func jwksJSON(n *yaml.Node) ([]byte, error) {
	var v any
	if err := n.Decode(&v); err != nil {
		return nil, err
	}
	return json.Marshal(normalize(v))
}

// Keys say which keys a Suite's jwtRules trust. The zero Keys makes a
// test key that every jwtRule trusts and that signs the tokens cases ask
// for.
type Keys struct {
	// Trusted are keys every jwtRule trusts instead of a test key.
	Trusted []token.Key
	// PerRule, when set, gives each jwtRule its own keys (its jwks or
	// jwksUri), for explaining real tokens.
	PerRule func(*securityv1beta1.JWTRule) (token.KeySource, error)
}

// NewSuite prepares documents to be run as a test file. f may hold no
// cases: explain uses a Suite to decide one request.
func NewSuite(f *File, docs []*policy.Document, k Keys) (*Suite, error) {
	s := &Suite{File: f, Docs: docs}
	perRule := k.PerRule
	if perRule == nil {
		trusted := k.Trusted
		if len(trusted) == 0 {
			var err error
			if s.key, err = mint.NewKey(mint.DefaultAlgorithm); err != nil {
				return nil, err
			}
			if s.impostor, err = s.key.Impostor(); err != nil {
				return nil, err
			}
			trusted = []token.Key{s.key.PublicKey()}
		}
		keys := token.StaticKeys(trusted)
		perRule = func(*securityv1beta1.JWTRule) (token.KeySource, error) { return keys, nil }
	}
	eng, err := engine.New(docs, engine.Options{
		Keys: perRule,
		Now:  func() time.Time { return time.Unix(s.now.Load(), 0) },
	})
	if err != nil {
		return nil, err
	}
	s.engine = eng
	s.defaults = f.TokenDefaults
	if s.defaults == nil {
		s.defaults = defaultClaims(docs)
	}
	return s, nil
}

// defaultClaims are the token_defaults of a file that gives none: the
// issuer and first audience of the first jwtRule, and a test subject.
func defaultClaims(docs []*policy.Document) map[string]any {
	c := map[string]any{"sub": defaultSub}
	for _, d := range docs {
		if ra := d.RequestAuthentication; ra != nil && len(ra.GetJwtRules()) > 0 {
			r := ra.GetJwtRules()[0]
			c["iss"] = r.GetIssuer()
			if auds := r.GetAudiences(); len(auds) > 0 {
				c["aud"] = auds[0]
			}
			break
		}
	}
	return c
}

// Result is the outcome of one case.
type Result struct {
	File     string
	Case     *Case
	Expected int
	Actual   int
	Pass     bool
	// Why says what failed when the status matched but the expected
	// policy did not.
	Why string
	// Decision is the engine's answer, with its trace.
	Decision engine.Decision
	// BadRequest is set when the request could not be authorized at all
	// (a path Envoy rejects with 400); Decision is then empty.
	BadRequest error
}

// Run runs every case of the suite, in order.
func (s *Suite) Run(ctx context.Context) []Result {
	out := make([]Result, 0, len(s.File.Cases))
	for i := range s.File.Cases {
		out = append(out, s.RunCase(ctx, &s.File.Cases[i]))
	}
	return out
}

// RunCase decides one case and compares the outcome with its expectation.
func (s *Suite) RunCase(ctx context.Context, c *Case) Result {
	r := Result{File: s.File.Path, Case: c, Expected: c.Expect.Status}
	d, err := s.Decide(ctx, c)
	if err != nil {
		r.Actual, r.BadRequest = http.StatusBadRequest, err
		r.Why = err.Error()
		return r
	}
	r.Decision, r.Actual = d, d.Status
	r.Pass = r.Actual == r.Expected
	if r.Pass && c.Expect.Policy != "" && c.Expect.Policy != d.Policy {
		r.Pass = false
		got := d.Policy
		if got == "" {
			got = "no policy"
		}
		r.Why = fmt.Sprintf("expected policy %s to decide, but %s did", c.Expect.Policy, got)
	}
	return r
}

// Decide builds the request of a case and has the engine explain its
// decision. The error is a request idgate would refuse with 400 before
// any policy (a path Envoy rejects).
func (s *Suite) Decide(ctx context.Context, c *Case) (engine.Decision, error) {
	now := time.Now().Unix()
	clock := now
	for _, t := range c.tokens() {
		if t.Token.Kind == TokenRaw && t.Token.At != 0 {
			clock = t.Token.At
		}
	}
	a, err := s.request(c, now)
	if err != nil {
		return engine.Decision{}, err
	}
	s.now.Store(clock)
	return s.engine.Explain(ctx, a), nil
}

// tokens returns the case's tokens with their placements: the request's
// own first, then the extra ones.
func (c *Case) tokens() []Placed {
	out := []Placed{{Token: c.Request.Token, TokenIn: c.Request.TokenIn}}
	return append(out, c.ExtraTokens...)
}

// request builds the attributes of a case's request, now being the unix
// time the generated tokens are minted at.
func (s *Suite) request(c *Case, now int64) (*request.Attributes, error) {
	r := c.Request
	a := &request.Attributes{
		Method: or(r.Method, http.MethodGet),
		Scheme: or(r.Scheme, "http"),
		Host:   or(r.Host, "example.com"),
		Header: http.Header{},
	}
	target := or(r.Path, "/")
	path, query, _ := strings.Cut(target, "?")
	a.Query = query
	a.DestinationPort = r.Port
	if a.DestinationPort == 0 {
		a.DestinationPort = 80
		if a.Scheme == "https" {
			a.DestinationPort = 443
		}
	}
	if a.Scheme == "https" {
		a.SNI = hostOnly(a.Host)
	}
	var err error
	if a.SourceIP, err = parseIP(or(r.SourceIP, "127.0.0.1"), "source_ip"); err != nil {
		return nil, err
	}
	a.RemoteIP = a.SourceIP
	if r.RemoteIP != "" {
		if a.RemoteIP, err = parseIP(r.RemoteIP, "remote_ip"); err != nil {
			return nil, err
		}
	}
	for name, v := range r.Headers {
		a.Header.Add(textproto.CanonicalMIMEHeaderKey(name), v)
	}
	for _, t := range c.tokens() {
		if t.Token.Kind == "" || t.Token.Kind == TokenNone {
			continue
		}
		raw, err := s.mintToken(t.Token, now)
		if err != nil {
			return nil, err
		}
		place(a, t.TokenIn, raw)
	}
	if a.Path, err = request.NormalizePath(path); err != nil {
		return nil, err
	}
	return a, nil
}

// place puts a token where a placement says.
func place(a *request.Attributes, pl Placement, raw string) {
	switch {
	case pl.Query != "":
		kv := pl.Query + "=" + raw
		if a.Query == "" {
			a.Query = kv
		} else {
			a.Query += "&" + kv
		}
	case pl.Cookie != "":
		kv := pl.Cookie + "=" + raw
		if old := a.Header.Get("Cookie"); old != "" {
			a.Header.Set("Cookie", old+"; "+kv)
		} else {
			a.Header.Set("Cookie", kv)
		}
	case pl.Header != "":
		prefix := ""
		if pl.Prefix != nil {
			prefix = *pl.Prefix
		}
		a.Header.Add(textproto.CanonicalMIMEHeaderKey(pl.Header), prefix+raw)
	default:
		a.Header.Add("Authorization", "Bearer "+raw)
	}
}

// mintToken makes the token a spec asks for, at unix time now.
func (s *Suite) mintToken(t TokenSpec, now int64) (string, error) {
	switch t.Kind {
	case TokenRaw:
		return t.Raw, nil
	case TokenMalformed:
		return malformed, nil
	}
	if s.key == nil {
		return "", fmt.Errorf("a %s token needs the test key, but the jwtRules trust other keys; send a raw token", t.Kind)
	}
	switch t.Kind {
	case TokenClaims:
		claims := copyClaims(t.Claims)
		for _, name := range []string{"exp", "nbf", "iat"} {
			if v, ok := claims[name]; ok {
				at, err := RelativeTime(v, now)
				if err != nil {
					return "", err
				}
				claims[name] = at
			}
		}
		setDefault(claims, "iat", now)
		setDefault(claims, "exp", now+3600)
		return s.key.Sign(claims, nil)
	}
	claims := copyClaims(s.defaults)
	claims["iat"], claims["exp"] = now, now+3600
	signer := s.key
	switch t.Kind {
	case TokenInvalid:
		signer = s.impostor
	case TokenExpired:
		claims["iat"], claims["exp"] = now-7200, now-3600
	case TokenNotYetValid:
		claims["nbf"], claims["exp"] = now+3600, now+7200
	case TokenWrongIssuer:
		claims["iss"] = wrongIssuer
	case TokenWrongAudience:
		claims["aud"] = wrongAudience
	default:
		return "", fmt.Errorf("unknown token kind %q", t.Kind)
	}
	return signer.Sign(claims, nil)
}

func copyClaims(m map[string]any) map[string]any {
	out := make(map[string]any, len(m)+2)
	for k, v := range m {
		out[k] = v
	}
	return out
}

func setDefault(m map[string]any, k string, v any) {
	if _, ok := m[k]; !ok {
		m[k] = v
	}
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func parseIP(s, field string) (netip.Addr, error) {
	ip, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%s: %q is not an IP address", field, s)
	}
	return ip.Unmap(), nil
}

// hostOnly strips a port from a host[:port].
func hostOnly(h string) string {
	if ap, err := netip.ParseAddrPort(h); err == nil {
		return ap.Addr().String()
	}
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.Contains(h[i:], "]") && strings.Count(h, ":") == 1 {
		return h[:i]
	}
	return strings.Trim(h, "[]")
}

// IsLoadError reports whether err means a file could not be loaded (exit
// status 2 in the contract) rather than a case failing.
func IsLoadError(err error) bool {
	var le *LoadError
	var ple *policy.LoadError
	return errors.As(err, &le) || errors.As(err, &ple)
}
