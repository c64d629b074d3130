// Package policytest runs policy test files: Istio policies plus requests
// and the outcomes they must get, as `idgate test` reads them
// (shared/spec/policy-tests.md).
package policytest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// maxFileSize bounds a test file; test files are small and untrusted input
// must not exhaust memory.
const maxFileSize = 4 << 20

// File is one parsed policy test file.
type File struct {
	Path   string
	Name   string
	Source string
	// Policies are the embedded Istio documents, as YAML nodes so that
	// errors in them carry this file's line numbers.
	Policies []*yaml.Node
	// PolicyFiles are more policy files, relative to the test file.
	PolicyFiles []string
	// TokenDefaults are the claims of the generated failure tokens
	// (invalid, expired, ...); nil when the file gives none.
	TokenDefaults map[string]any
	// JWKS is an inline JWK Set the rules trust instead of a test key;
	// JWKSFile a path to one, relative to the test file.
	JWKS     *yaml.Node
	JWKSFile string
	Cases    []Case
}

// Case is one request and its expected outcome.
type Case struct {
	Name        string
	Line        int
	Request     Request
	ExtraTokens []Placed
	Expect      Expect
}

// Request describes the request of a case; zero values take the
// documented defaults.
type Request struct {
	Method   string
	Host     string
	Path     string
	Port     int
	Scheme   string
	SourceIP string
	RemoteIP string
	Headers  map[string]string
	Token    TokenSpec
	TokenIn  Placement
}

// Placed is a token with its placement, for extra_tokens.
type Placed struct {
	Token   TokenSpec
	TokenIn Placement
}

// Placement says where a token goes in the request. The zero value is
// the Authorization header with the "Bearer " prefix.
type Placement struct {
	Header string
	Prefix *string
	Query  string
	Cookie string
}

// TokenKind names what the runner sends as a case's token.
type TokenKind string

// The token kinds of the contract.
const (
	TokenNone          TokenKind = "none"
	TokenClaims        TokenKind = "claims"
	TokenInvalid       TokenKind = "invalid"
	TokenExpired       TokenKind = "expired"
	TokenNotYetValid   TokenKind = "not_yet_valid"
	TokenWrongIssuer   TokenKind = "wrong_issuer"
	TokenWrongAudience TokenKind = "wrong_audience"
	TokenMalformed     TokenKind = "malformed"
	TokenRaw           TokenKind = "raw"
)

// TokenSpec is a case's token: a kind, and the claims or raw string where
// the kind takes them.
type TokenSpec struct {
	Kind   TokenKind
	Claims map[string]any
	Raw    string
	// At is the time (unix seconds) a raw token is checked at; 0 = now.
	At int64
}

// Expect is what a case must come out as.
type Expect struct {
	Status int
	Policy string
}

// LoadError says which file, and where in it, could not be loaded.
type LoadError struct {
	File string
	Line int
	Msg  string
}

func (e *LoadError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// Files expands files and directories into the test files they name:
// a directory means every *.yaml and *.yml file below it, recursively, in
// lexical order.
func Files(args []string) ([]string, error) {
	var out []string
	for _, arg := range args {
		fi, err := os.Stat(arg)
		if err != nil {
			return nil, err
		}
		if !fi.IsDir() {
			out = append(out, arg)
			continue
		}
		var found []string
		err = filepath.WalkDir(arg, func(path string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() && isYAML(path) {
				found = append(found, path)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		sort.Strings(found)
		out = append(out, found...)
	}
	return out, nil
}

func isYAML(path string) bool {
	ext := filepath.Ext(path)
	return ext == ".yaml" || ext == ".yml"
}

// ReadFile reads and parses one test file.
func ReadFile(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, &LoadError{File: path, Msg: err.Error()}
	}
	if len(data) > maxFileSize {
		return nil, &LoadError{File: path, Msg: fmt.Sprintf("larger than %d bytes", maxFileSize)}
	}
	return Parse(path, data)
}

// Parse parses a test file's contents; path names it in errors and anchors
// the relative paths it contains.
func Parse(path string, data []byte) (*File, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &LoadError{File: path, Msg: "empty file: a test file needs policies and cases"}
		}
		return nil, &LoadError{File: path, Msg: strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		line := extra.Line
		return nil, &LoadError{File: path, Line: line, Msg: "a test file holds one YAML document; found a second"}
	}
	p := parser{file: path}
	f := p.testFile(&doc)
	if p.err != nil {
		return nil, p.err
	}
	f.Path = path
	return f, nil
}

// parser walks the YAML tree and keeps the first error, with its line.
type parser struct {
	file string
	err  error
}

func (p *parser) fail(n *yaml.Node, format string, args ...any) {
	if p.err != nil {
		return
	}
	line := 0
	if n != nil {
		line = n.Line
	}
	p.err = &LoadError{File: p.file, Line: line, Msg: fmt.Sprintf(format, args...)}
}

// fields iterates a mapping node, rejecting keys not in known.
func (p *parser) fields(n *yaml.Node, where string, known []string, fn func(key string, k, v *yaml.Node)) {
	n = resolve(n)
	if n.Kind != yaml.MappingNode {
		p.fail(n, "%s: want a mapping, got %s", where, kindName(n))
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content) && p.err == nil; i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		key := k.Value
		if !contains(known, key) {
			p.fail(k, "%s: unknown field %q (known: %s)", where, key, strings.Join(known, ", "))
			return
		}
		if seen[key] {
			p.fail(k, "%s: field %q given twice", where, key)
			return
		}
		seen[key] = true
		fn(key, k, resolve(v))
	}
}

func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && (n.Kind == yaml.DocumentNode || n.Kind == yaml.AliasNode) {
		if n.Kind == yaml.DocumentNode {
			if len(n.Content) == 0 {
				return n
			}
			n = n.Content[0]
		} else {
			n = n.Alias
		}
	}
	return n
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "nothing"
		}
		return fmt.Sprintf("%q", n.Value)
	}
	return "something else"
}

func (p *parser) str(n *yaml.Node, where string) string {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		p.fail(n, "%s: want a string, got %s", where, kindName(n))
		return ""
	}
	return n.Value
}

func (p *parser) integer(n *yaml.Node, where string) int64 {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
		p.fail(n, "%s: want an integer, got %s", where, kindName(n))
		return 0
	}
	v, err := strconv.ParseInt(n.Value, 10, 64)
	if err != nil {
		p.fail(n, "%s: %v", where, err)
	}
	return v
}

func (p *parser) list(n *yaml.Node, where string, fn func(i int, item *yaml.Node)) {
	if n.Kind != yaml.SequenceNode {
		p.fail(n, "%s: want a list, got %s", where, kindName(n))
		return
	}
	for i, item := range n.Content {
		if p.err != nil {
			return
		}
		fn(i, resolve(item))
	}
}

// value decodes a node into plain Go values (map[string]any, []any,
// string, int64, float64, bool, nil) for claims.
func (p *parser) value(n *yaml.Node, where string) any {
	var v any
	if err := n.Decode(&v); err != nil {
		p.fail(n, "%s: %v", where, err)
		return nil
	}
	return normalize(v)
}

// normalize turns yaml.v3's map[string]interface{} trees into values that
// encode as JSON (yaml.v3 may produce map[interface{}]interface{} for
// non-string keys, which JSON cannot hold).
func normalize(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			t[k] = normalize(e)
		}
		return t
	case map[any]any:
		m := make(map[string]any, len(t))
		for k, e := range t {
			m[fmt.Sprint(k)] = normalize(e)
		}
		return m
	case []any:
		for i, e := range t {
			t[i] = normalize(e)
		}
		return t
	case int:
		return int64(t)
	}
	return v
}

func (p *parser) testFile(doc *yaml.Node) *File {
	f := &File{}
	root := resolve(doc)
	if root.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(root.Content); i += 2 {
			if k := root.Content[i]; k.Value == "apiVersion" || k.Value == "kind" {
				p.fail(k, "this is an Istio document, not a policy test file: list it in a test file's policy_files (or embed it under policies:)")
				return nil
			}
		}
	}
	p.fields(root, "test file", []string{"name", "source", "policies", "policy_files", "token_defaults", "jwks", "jwks_file", "cases"}, func(key string, k, v *yaml.Node) {
		switch key {
		case "name":
			f.Name = p.str(v, key)
		case "source":
			f.Source = p.str(v, key)
		case "policies":
			p.list(v, key, func(i int, item *yaml.Node) {
				if item.Kind != yaml.MappingNode {
					p.fail(item, "policies[%d]: want an Istio document (a mapping), got %s", i, kindName(item))
					return
				}
				f.Policies = append(f.Policies, item)
			})
		case "policy_files":
			p.list(v, key, func(i int, item *yaml.Node) {
				f.PolicyFiles = append(f.PolicyFiles, p.str(item, fmt.Sprintf("policy_files[%d]", i)))
			})
		case "token_defaults":
			m, ok := p.value(v, key).(map[string]any)
			if !ok && p.err == nil {
				p.fail(v, "token_defaults: want a mapping of claims, got %s", kindName(v))
			}
			f.TokenDefaults = m
		case "jwks":
			if v.Kind != yaml.MappingNode {
				p.fail(v, "jwks: want a JWK Set (a mapping with \"keys\"), got %s", kindName(v))
			}
			f.JWKS = v
		case "jwks_file":
			f.JWKSFile = p.str(v, key)
		case "cases":
			p.list(v, key, func(i int, item *yaml.Node) {
				f.Cases = append(f.Cases, p.testCase(item, fmt.Sprintf("cases[%d]", i)))
			})
		}
	})
	if p.err != nil {
		return nil
	}
	if f.JWKS != nil && f.JWKSFile != "" {
		p.fail(root, "jwks and jwks_file are both given; use one")
	}
	if len(f.Policies) == 0 && len(f.PolicyFiles) == 0 {
		p.fail(root, "no policies: give policies or policy_files")
	}
	if len(f.Cases) == 0 {
		p.fail(root, "no cases")
	}
	return f
}

func (p *parser) testCase(n *yaml.Node, where string) Case {
	c := Case{Line: n.Line}
	hasExpect := false
	p.fields(n, where, []string{"name", "request", "extra_tokens", "expect"}, func(key string, k, v *yaml.Node) {
		switch key {
		case "name":
			c.Name = p.str(v, where+".name")
		case "request":
			c.Request = p.request(v, where+".request")
		case "extra_tokens":
			p.list(v, where+".extra_tokens", func(i int, item *yaml.Node) {
				w := fmt.Sprintf("%s.extra_tokens[%d]", where, i)
				var pl Placed
				hasToken := false
				p.fields(item, w, []string{"token", "token_in"}, func(key string, k, v *yaml.Node) {
					switch key {
					case "token":
						pl.Token = p.token(v, w+".token")
						hasToken = true
					case "token_in":
						pl.TokenIn = p.placement(v, w+".token_in")
					}
				})
				if !hasToken {
					p.fail(item, "%s: token is required", w)
				}
				c.ExtraTokens = append(c.ExtraTokens, pl)
			})
		case "expect":
			hasExpect = true
			p.fields(v, where+".expect", []string{"status", "policy"}, func(key string, k, v *yaml.Node) {
				switch key {
				case "status":
					s := p.integer(v, where+".expect.status")
					if p.err == nil && s != 200 && s != 401 && s != 403 {
						p.fail(v, "%s.expect.status: %d is not an outcome; use 200 (allowed), 401 (authentication failed) or 403 (denied)", where, s)
					}
					c.Expect.Status = int(s)
				case "policy":
					c.Expect.Policy = p.str(v, where+".expect.policy")
				}
			})
		}
	})
	if p.err != nil {
		return c
	}
	if c.Name == "" {
		c.Name = where
	}
	if !hasExpect || c.Expect.Status == 0 {
		p.fail(n, "%s: expect.status is required", where)
	}
	return c
}

func (p *parser) request(n *yaml.Node, where string) Request {
	var r Request
	p.fields(n, where, []string{"method", "host", "path", "port", "scheme", "source_ip", "remote_ip", "headers", "token", "token_in"}, func(key string, k, v *yaml.Node) {
		w := where + "." + key
		switch key {
		case "method":
			r.Method = p.str(v, w)
		case "host":
			r.Host = p.str(v, w)
		case "path":
			r.Path = p.str(v, w)
			if p.err == nil && !strings.HasPrefix(r.Path, "/") {
				p.fail(v, "%s: %q must start with /", w, r.Path)
			}
		case "port":
			port := p.integer(v, w)
			if p.err == nil && (port < 1 || port > 65535) {
				p.fail(v, "%s: %d is not a port (1-65535)", w, port)
			}
			r.Port = int(port)
		case "scheme":
			r.Scheme = p.str(v, w)
			if p.err == nil && r.Scheme != "http" && r.Scheme != "https" {
				p.fail(v, "%s: %q is not http or https", w, r.Scheme)
			}
		case "source_ip":
			r.SourceIP = p.str(v, w)
		case "remote_ip":
			r.RemoteIP = p.str(v, w)
		case "headers":
			r.Headers = p.headers(v, w)
		case "token":
			r.Token = p.token(v, w)
		case "token_in":
			r.TokenIn = p.placement(v, w)
		}
	})
	return r
}

func (p *parser) headers(n *yaml.Node, where string) map[string]string {
	if n.Kind != yaml.MappingNode {
		p.fail(n, "%s: want a mapping of header names to values, got %s", where, kindName(n))
		return nil
	}
	h := make(map[string]string, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content) && p.err == nil; i += 2 {
		k, v := n.Content[i], resolve(n.Content[i+1])
		name := p.str(k, where)
		if p.err != nil {
			return nil
		}
		if !validHeaderName(name) {
			p.fail(k, "%s: %q is not a valid header name", where, name)
			return nil
		}
		lower := strings.ToLower(name)
		if _, dup := h[lower]; dup {
			p.fail(k, "%s: header %q given twice", where, name)
			return nil
		}
		h[lower] = p.str(v, where+"."+name)
	}
	return h
}

// validHeaderName reports whether s is an HTTP field name (RFC 9110 token).
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

func (p *parser) token(n *yaml.Node, where string) TokenSpec {
	if n.Kind == yaml.ScalarNode && n.Tag != "!!null" {
		switch k := TokenKind(n.Value); k {
		case TokenNone, TokenInvalid, TokenExpired, TokenNotYetValid, TokenWrongIssuer, TokenWrongAudience, TokenMalformed:
			return TokenSpec{Kind: k}
		}
		p.fail(n, "%s: unknown token %q (want none, invalid, expired, not_yet_valid, wrong_issuer, wrong_audience, malformed, {claims: ...} or {raw: ...})", where, n.Value)
		return TokenSpec{}
	}
	if n.Kind != yaml.MappingNode {
		p.fail(n, "%s: want a token kind or a mapping, got %s", where, kindName(n))
		return TokenSpec{}
	}
	var t TokenSpec
	hasAt := false
	p.fields(n, where, []string{"claims", "raw", "at"}, func(key string, k, v *yaml.Node) {
		switch key {
		case "claims":
			m, ok := p.value(v, where+".claims").(map[string]any)
			if !ok && p.err == nil {
				p.fail(v, "%s.claims: want a mapping of claims, got %s", where, kindName(v))
			}
			t.Kind, t.Claims = TokenClaims, m
		case "raw":
			t.Kind, t.Raw = TokenRaw, p.str(v, where+".raw")
		case "at":
			t.At = p.integer(v, where+".at")
			hasAt = true
		}
	})
	if p.err != nil {
		return t
	}
	switch {
	case t.Kind == "":
		p.fail(n, "%s: want claims or raw", where)
	case t.Claims != nil && t.Raw != "":
		p.fail(n, "%s: claims and raw are both given; use one", where)
	case hasAt && t.Kind != TokenRaw:
		p.fail(n, "%s: at goes with raw", where)
	}
	if t.Claims != nil {
		for _, c := range []string{"exp", "nbf", "iat"} {
			if v, ok := t.Claims[c]; ok {
				if _, err := RelativeTime(v, 0); err != nil {
					p.fail(n, "%s.claims.%s: %v", where, c, err)
				}
			}
		}
	}
	return t
}

func (p *parser) placement(n *yaml.Node, where string) Placement {
	var pl Placement
	p.fields(n, where, []string{"header", "prefix", "query", "cookie"}, func(key string, k, v *yaml.Node) {
		w := where + "." + key
		switch key {
		case "header":
			pl.Header = p.str(v, w)
			if p.err == nil && !validHeaderName(pl.Header) {
				p.fail(v, "%s: %q is not a valid header name", w, pl.Header)
			}
		case "prefix":
			s := ""
			if !(v.Kind == yaml.ScalarNode && v.Tag == "!!null") {
				s = p.str(v, w)
			}
			pl.Prefix = &s
		case "query":
			pl.Query = p.str(v, w)
		case "cookie":
			pl.Cookie = p.str(v, w)
		}
	})
	if p.err != nil {
		return pl
	}
	set := 0
	for _, s := range []string{pl.Header, pl.Query, pl.Cookie} {
		if s != "" {
			set++
		}
	}
	switch {
	case set != 1:
		p.fail(n, "%s: give exactly one of header, query or cookie", where)
	case pl.Prefix != nil && pl.Header == "":
		p.fail(n, "%s: prefix goes with header", where)
	}
	return pl
}

// RelativeTime resolves a time claim of a test file: an integer (unix
// seconds) or "now+N" / "now-N" (seconds from now, where now is a unix
// time).
func RelativeTime(v any, now int64) (int64, error) {
	switch t := v.(type) {
	case int64:
		return t, nil
	case string:
		s := strings.TrimSpace(t)
		if s == "now" {
			return now, nil
		}
		if len(s) > 4 && strings.HasPrefix(s, "now") && (s[3] == '+' || s[3] == '-') {
			n, err := strconv.ParseInt(strings.TrimSpace(s[4:]), 10, 64)
			if err == nil && n >= 0 {
				if s[3] == '-' {
					n = -n
				}
				return now + n, nil
			}
		}
		return 0, fmt.Errorf("%q is not a time: want unix seconds, now+N or now-N", t)
	}
	return 0, fmt.Errorf("%v is not a time: want unix seconds, now+N or now-N", v)
}
