// Package config reads idgate's own configuration file (idgate.yaml):
// listeners, upstream, policies, trusted proxies, audit, TLS, timeouts,
// limits and key-set settings. Every setting a command-line flag also sets
// has the flag's name as its key, so one name means one setting everywhere.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// maxFileSize bounds the configuration file.
const maxFileSize = 1 << 20

// Config is idgate's configuration. The zero value of every field means
// its default (see Defaults).
type Config struct {
	// Policies are Istio YAML files or directories, watched for changes.
	Policies []string `yaml:"policies"`
	// Listen is the reverse proxy's address; off when empty.
	Listen string `yaml:"listen"`
	// Upstream is where the reverse proxy sends allowed requests.
	Upstream string `yaml:"upstream"`
	// GRPCListen is the Envoy ext_authz gRPC address; off when empty.
	GRPCListen string `yaml:"grpc-listen"`
	// AuthzListen serves Envoy HTTP ext_authz and forward-auth; off when
	// empty.
	AuthzListen string `yaml:"authz-listen"`
	// AdminListen serves /healthz, /readyz and /metrics.
	AdminListen string `yaml:"admin-listen"`
	// TrustedProxies is how many X-Forwarded-For hops to trust for
	// remote.ip (Istio's numTrustedProxies).
	TrustedProxies int `yaml:"trusted-proxies"`
	// Audit is where audit records go: "-" for stdout, or a file path.
	Audit string `yaml:"audit"`
	// AuditOnFull says what happens when the audit sink falls behind:
	// "block" (backpressure, the default) or "drop" (counted and logged).
	AuditOnFull string `yaml:"audit-on-full"`
	// DryRun decides and records, never blocks.
	DryRun bool `yaml:"dry-run"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `yaml:"log-level"`
	// Pprof serves Go's profiles under /debug/pprof/ on the admin
	// listener.
	Pprof bool `yaml:"pprof"`

	// TLS terminates TLS on the reverse proxy listener.
	TLS TLS `yaml:"tls"`
	// UpstreamTLS configures HTTPS to the upstream.
	UpstreamTLS UpstreamTLS `yaml:"upstream-tls"`
	// Timeouts bound the phases of a request.
	Timeouts Timeouts `yaml:"timeouts"`
	// Limits bound what a request may carry.
	Limits Limits `yaml:"limits"`
	// Keys configure how key sets are fetched and kept.
	Keys Keys `yaml:"keys"`

	// src is the file the configuration was read from, to place
	// validation errors; nil for a configuration built in code.
	src *source
}

// source is a configuration file and its YAML tree.
type source struct {
	file string
	root *yaml.Node
}

// TLS is a certificate and key for a listener, reloaded when the files
// change.
type TLS struct {
	CertFile string `yaml:"cert-file"`
	KeyFile  string `yaml:"key-file"`
}

// UpstreamTLS configures the reverse proxy's HTTPS connections upstream.
type UpstreamTLS struct {
	// CAFile verifies the upstream's certificate; empty means the system
	// roots.
	CAFile string `yaml:"ca-file"`
	// CertFile and KeyFile are a client certificate, if the upstream
	// asks for one.
	CertFile string `yaml:"cert-file"`
	KeyFile  string `yaml:"key-file"`
	// ServerName overrides the name the certificate is checked against.
	ServerName string `yaml:"server-name"`
}

// Timeouts bound the phases of a request.
type Timeouts struct {
	// ReadHeader bounds reading a request's headers (default 10s).
	ReadHeader Duration `yaml:"read-header"`
	// Idle bounds an idle keep-alive connection (default 120s).
	Idle Duration `yaml:"idle"`
	// Upstream bounds waiting for the upstream's response headers
	// (default 60s); streaming bodies are not bounded.
	Upstream Duration `yaml:"upstream"`
	// Shutdown bounds draining in-flight requests on SIGTERM (default 30s).
	Shutdown Duration `yaml:"shutdown"`
}

// Limits bound what a request may carry.
type Limits struct {
	// MaxHeaderBytes bounds a request's header section (default 64 KiB).
	MaxHeaderBytes int `yaml:"max-header-bytes"`
}

// Keys configure key sets.
type Keys struct {
	// RefreshInterval is how often keys are fetched again (default 20m).
	RefreshInterval Duration `yaml:"refresh-interval"`
	// MinRefreshInterval bounds refreshes caused by unknown kids (default
	// 30s).
	MinRefreshInterval Duration `yaml:"min-refresh-interval"`
	// FetchTimeout bounds one fetch (default 5s).
	FetchTimeout Duration `yaml:"fetch-timeout"`
	// MaxStale is how long the last good keys serve while fetches fail
	// (default 24h).
	MaxStale Duration `yaml:"max-stale"`
	// ClockSkew is the skew allowed for exp/nbf/iat (default 60s).
	ClockSkew Duration `yaml:"clock-skew"`
	// AllowedTenants restricts Entra multi-tenant ({tenantid}) issuers.
	AllowedTenants []string `yaml:"allowed-tenants"`
	// TokenCacheSize is how many verified tokens are remembered, so that
	// a token sent again is not verified again (default 100000; 0
	// turns the cache off). The cache also stays within 64 MiB.
	TokenCacheSize int `yaml:"token-cache-size"`
}

// Duration is a time.Duration written as "5s", "20m", "1h30m".
type Duration time.Duration

// UnmarshalYAML reads a duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	// "line N: " lets the caller place the error, as yaml.v3's own.
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		return fmt.Errorf("line %d: want a duration such as \"5s\"", n.Line)
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration (write e.g. \"5s\", \"20m\", \"1h\")", n.Line, n.Value)
	}
	if v < 0 {
		return fmt.Errorf("line %d: %q is negative", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// D returns the duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Defaults returns the configuration idgate runs with when nothing is set.
func Defaults() Config {
	return Config{
		AdminListen: "127.0.0.1:9901",
		Audit:       "-",
		AuditOnFull: "block",
		LogLevel:    "info",
		Timeouts: Timeouts{
			ReadHeader: Duration(10 * time.Second),
			Idle:       Duration(120 * time.Second),
			Upstream:   Duration(60 * time.Second),
			Shutdown:   Duration(30 * time.Second),
		},
		Limits: Limits{MaxHeaderBytes: 64 << 10},
		Keys: Keys{
			RefreshInterval:    Duration(20 * time.Minute),
			MinRefreshInterval: Duration(30 * time.Second),
			FetchTimeout:       Duration(5 * time.Second),
			MaxStale:           Duration(24 * time.Hour),
			ClockSkew:          Duration(60 * time.Second),
			TokenCacheSize:     100_000,
		},
	}
}

// Error is a problem in a configuration file, with its place.
type Error struct {
	File string
	Line int
	// Field is the setting, e.g. "timeouts.upstream".
	Field string
	Msg   string
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			b.WriteString(":" + strconv.Itoa(e.Line))
		}
		b.WriteString(": ")
	}
	if e.Field != "" {
		b.WriteString(e.Field + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Load reads a configuration file over the defaults. Relative paths in it
// (policies, certificates, the audit file) are taken relative to the
// file's directory.
func Load(path string) (Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return Config{}, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return Config{}, &Error{File: path, Msg: err.Error()}
	}
	if len(data) > maxFileSize {
		return Config{}, &Error{File: path, Msg: fmt.Sprintf("larger than %d bytes", maxFileSize)}
	}
	return Parse(path, data)
}

// Parse reads configuration from data over the defaults; file names it in
// errors and anchors relative paths. A file may hold only some settings
// (flags and the environment give the rest): call Validate once everything
// is applied.
func Parse(file string, data []byte) (Config, error) {
	c := Defaults()
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return c, nil
		}
		return c, yamlError(file, err)
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if err := checkNoAliases(file, root); err != nil {
		return c, err
	}
	d := yaml.NewDecoder(bytes.NewReader(data))
	d.KnownFields(true)
	if err := d.Decode(&c); err != nil {
		return c, yamlError(file, err)
	}
	c.resolve(dirOf(file))
	c.src = &source{file: file, root: root}
	return c, nil
}

// yamlError turns yaml.v3's errors ("yaml: line 3: ...", or a TypeError
// listing "line 5: field x not found in type config.Config") into *Error.
func yamlError(file string, err error) error {
	msg := err.Error()
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg = te.Errors[0]
	}
	msg = strings.TrimPrefix(msg, "yaml: ")
	e := &Error{File: file, Msg: msg}
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if i := strings.IndexByte(rest, ':'); i > 0 {
			if n, err := strconv.Atoi(rest[:i]); err == nil {
				e.Line, e.Msg = n, strings.TrimSpace(rest[i+1:])
			}
		}
	}
	e.Msg = strings.ReplaceAll(e.Msg, " in type config.Config", "")
	e.Msg = strings.ReplaceAll(e.Msg, "config.", "")
	return e
}

// checkNoAliases refuses YAML aliases: a configuration has no use for
// them, and they are how small files expand into huge ones.
func checkNoAliases(file string, n *yaml.Node) error {
	if n.Kind == yaml.AliasNode {
		return &Error{File: file, Line: n.Line, Msg: "YAML aliases are not allowed in the configuration"}
	}
	for _, c := range n.Content {
		if err := checkNoAliases(file, c); err != nil {
			return err
		}
	}
	return nil
}

// lineOf finds the line of a dotted field path in a mapping tree; 0 when
// it is not there.
func lineOf(root *yaml.Node, field string) int {
	n := root
	line := 0
	for _, part := range strings.Split(field, ".") {
		if n == nil || n.Kind != yaml.MappingNode {
			return line
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == part {
				line, next = n.Content[i].Line, n.Content[i+1]
				break
			}
		}
		n = next
	}
	return line
}

func dirOf(file string) string {
	if i := strings.LastIndexByte(file, '/'); i >= 0 {
		return file[:i+1]
	}
	return ""
}

// resolve makes relative paths relative to dir.
func (c *Config) resolve(dir string) {
	rel := func(p *string) {
		if *p != "" && *p != "-" && !strings.HasPrefix(*p, "/") && dir != "" {
			*p = dir + *p
		}
	}
	for i := range c.Policies {
		rel(&c.Policies[i])
	}
	rel(&c.Audit)
	rel(&c.TLS.CertFile)
	rel(&c.TLS.KeyFile)
	rel(&c.UpstreamTLS.CAFile)
	rel(&c.UpstreamTLS.CertFile)
	rel(&c.UpstreamTLS.KeyFile)
}

// Validate checks a complete configuration (file, flags and environment
// applied). Its errors are *Error naming the setting, and, when the
// setting was written in the file, the file and line.
func (c *Config) Validate() error {
	err := c.validate()
	var ce *Error
	if errors.As(err, &ce) && c.src != nil {
		line := lineOf(c.src.root, ce.Field)
		if line == 0 && ce.Field == "upstream" {
			line = lineOf(c.src.root, "listen") // the setting that needs it
		}
		if line > 0 {
			ce.File, ce.Line = c.src.file, line
		}
	}
	return err
}

func (c *Config) validate() error {
	bad := func(field, format string, args ...any) error {
		return &Error{Field: field, Msg: fmt.Sprintf(format, args...)}
	}
	if c.Listen == "" && c.GRPCListen == "" && c.AuthzListen == "" {
		return bad("listen", "no listener: set at least one of listen, grpc-listen, authz-listen")
	}
	for _, l := range []struct{ field, addr string }{
		{"listen", c.Listen}, {"grpc-listen", c.GRPCListen}, {"authz-listen", c.AuthzListen}, {"admin-listen", c.AdminListen},
	} {
		if l.addr == "" {
			continue
		}
		if _, port, err := net.SplitHostPort(l.addr); err != nil {
			return bad(l.field, "%q is not host:port (%v)", l.addr, err)
		} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
			return bad(l.field, "%q: port %q is not a number from 0 to 65535", l.addr, port)
		}
	}
	if c.Listen != "" {
		if c.Upstream == "" {
			return bad("upstream", "listen needs an upstream (where allowed requests go)")
		}
		u, err := url.Parse(c.Upstream)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return bad("upstream", "%q is not an http:// or https:// URL", c.Upstream)
		}
		if u.RawQuery != "" || u.Fragment != "" {
			return bad("upstream", "%q: an upstream URL has no query or fragment", c.Upstream)
		}
	}
	if len(c.Policies) == 0 {
		return bad("policies", "no policies: give at least one Istio policy file or directory")
	}
	if c.TrustedProxies < 0 || c.TrustedProxies > 16 {
		return bad("trusted-proxies", "%d is out of range (0 to 16)", c.TrustedProxies)
	}
	if c.Audit == "" {
		return bad("audit", `empty: write "-" for stdout or a file path`)
	}
	switch c.AuditOnFull {
	case "block", "drop":
	default:
		return bad("audit-on-full", "%q: want block or drop", c.AuditOnFull)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return bad("log-level", "%q: want debug, info, warn or error", c.LogLevel)
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		return bad("tls", "cert-file and key-file go together")
	}
	if (c.UpstreamTLS.CertFile == "") != (c.UpstreamTLS.KeyFile == "") {
		return bad("upstream-tls", "cert-file and key-file go together")
	}
	if c.Limits.MaxHeaderBytes < 4096 || c.Limits.MaxHeaderBytes > 16<<20 {
		return bad("limits.max-header-bytes", "%d is out of range (4096 to 16 MiB)", c.Limits.MaxHeaderBytes)
	}
	for _, d := range []struct {
		field string
		v     Duration
		min   time.Duration
	}{
		{"timeouts.read-header", c.Timeouts.ReadHeader, time.Millisecond},
		{"timeouts.idle", c.Timeouts.Idle, time.Millisecond},
		{"timeouts.upstream", c.Timeouts.Upstream, time.Millisecond},
		{"timeouts.shutdown", c.Timeouts.Shutdown, 0},
		{"keys.refresh-interval", c.Keys.RefreshInterval, time.Second},
		{"keys.min-refresh-interval", c.Keys.MinRefreshInterval, 0},
		{"keys.fetch-timeout", c.Keys.FetchTimeout, 10 * time.Millisecond},
		{"keys.max-stale", c.Keys.MaxStale, 0},
	} {
		if d.v.D() < d.min {
			return bad(d.field, "%s is too short (at least %s)", d.v.D(), d.min)
		}
	}
	if c.Keys.ClockSkew.D() > 10*time.Minute {
		return bad("keys.clock-skew", "%s is too long (at most 10m)", c.Keys.ClockSkew.D())
	}
	if n := c.Keys.TokenCacheSize; n < 0 || n > 10_000_000 {
		return bad("keys.token-cache-size", "%d is out of range (0 turns the cache off; at most 10000000)", n)
	}
	return nil
}
