package config

import (
	"strings"
	"testing"
	"time"
)

func TestLoadFull(t *testing.T) {
	c, err := Load("testdata/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Policies) != 1 || c.Policies[0] != "testdata/policies/" {
		t.Errorf("policies = %q, want them relative to the file", c.Policies)
	}
	if c.Audit != "testdata/audit.jsonl" || c.TLS.CertFile != "testdata/tls.crt" || c.UpstreamTLS.CAFile != "/etc/ssl/upstream-ca.pem" {
		t.Errorf("paths not resolved against the file's directory: audit %q, cert %q, ca %q", c.Audit, c.TLS.CertFile, c.UpstreamTLS.CAFile)
	}
	if c.TrustedProxies != 1 || c.AuditOnFull != "drop" || c.Timeouts.Idle.D() != 2*time.Minute || c.Limits.MaxHeaderBytes != 32768 || c.Keys.AllowedTenants[0] != "11111111-2222-3333-4444-555555555555" {
		t.Errorf("settings not read: %+v", c)
	}
}

func TestDefaults(t *testing.T) {
	c, err := Parse("idgate.yaml", []byte("policies: [p.yaml]\nauthz-listen: 127.0.0.1:0\n"))
	if err != nil {
		t.Fatal(err)
	}
	d := Defaults()
	if c.AdminListen != "127.0.0.1:9901" || c.Audit != "-" || c.Keys.RefreshInterval != d.Keys.RefreshInterval || c.Keys.ClockSkew.D() != time.Minute || c.TrustedProxies != 0 {
		t.Errorf("defaults not applied: %+v", c)
	}
}

// Every mistake names the file, the line and the setting.
func TestErrors(t *testing.T) {
	const ok = "policies: [p.yaml]\nauthz-listen: 127.0.0.1:0\n"
	tests := []struct{ name, yaml, want string }{
		{"unknown field", ok + "listn: :8080\n", "idgate.yaml:3: field listn not found"},
		{"wrong type", ok + "trusted-proxies: many\n", "idgate.yaml:3: cannot unmarshal"},
		{"bad duration", ok + "timeouts:\n  upstream: 5 seconds\n", `idgate.yaml:4: "5 seconds" is not a duration`},
		{"negative duration", ok + "timeouts: {idle: -1s}\n", `"-1s" is negative`},
		{"no listener", "policies: [p.yaml]\n", "listen: no listener"},
		{"listen without upstream", ok + "listen: 127.0.0.1:8080\n", "idgate.yaml:3: upstream: listen needs an upstream"},
		{"bad upstream", ok + "listen: 127.0.0.1:8080\nupstream: ftp://x\n", `idgate.yaml:4: upstream: "ftp://x" is not an http:// or https:// URL`},
		{"bad listen address", "policies: [p.yaml]\nauthz-listen: localhost\n", `idgate.yaml:2: authz-listen: "localhost" is not host:port`},
		{"no policies", "authz-listen: 127.0.0.1:0\n", "policies: no policies"},
		{"trusted proxies out of range", ok + "trusted-proxies: 99\n", "idgate.yaml:3: trusted-proxies: 99 is out of range"},
		{"bad log level", ok + "log-level: loud\n", `idgate.yaml:3: log-level: "loud": want debug, info, warn or error`},
		{"bad audit mode", ok + "audit-on-full: maybe\n", `audit-on-full: "maybe": want block or drop`},
		{"half a certificate", ok + "tls: {cert-file: a.crt}\n", "idgate.yaml:3: tls: cert-file and key-file go together"},
		{"tiny header limit", ok + "limits: {max-header-bytes: 10}\n", "limits.max-header-bytes: 10 is out of range"},
		{"aliases", ok + "x: &a [1]\ny: *a\n", "aliases are not allowed"},
		{"not yaml", "policies: [\n", "idgate.yaml:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("idgate.yaml", []byte(tt.yaml))
			if err == nil {
				err = c.Validate()
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v\nwant it to contain %q", err, tt.want)
			}
		})
	}
}

// A file may hold only some settings; flags and the environment give the
// rest, and only the whole is validated.
func TestPartialFile(t *testing.T) {
	c, err := Parse("idgate.yaml", []byte("keys:\n  token-cache-size: 0\n"))
	if err != nil {
		t.Fatalf("a partial file: %v", err)
	}
	if err := c.Validate(); err == nil {
		t.Fatal("a configuration without policies or listeners validated")
	}
	c.Policies, c.AuthzListen = []string{"p.yaml"}, "127.0.0.1:0"
	if err := c.Validate(); err != nil {
		t.Errorf("after the flags: %v", err)
	}
}
