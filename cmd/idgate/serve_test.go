package main

import (
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/idgate/idgate/config"
)

// serve's start-up failures exit 2 and name the flag (shared/spec/serve.md).
func TestServeStartErrorsExit2(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "ok.yaml")
	writeFile(t, good, "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: a}\nspec: {}\n")
	bad := filepath.Join(dir, "bad.yaml")
	writeFile(t, bad, "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: a}\nspec:\n  action: MAYBE\n")
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	audit := "--audit=" + filepath.Join(dir, "audit.jsonl")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no listener", []string{"serve", "--policies", good}, "--listen: no listener"},
		{"listen without upstream", []string{"serve", "--policies", good, "--listen", "127.0.0.1:0"}, "--upstream: listen needs an upstream"},
		{"taken address", []string{"serve", "--policies", good, audit, "--admin-listen", "127.0.0.1:0", "--authz-listen", taken.Addr().String()}, "--authz-listen: listen tcp " + taken.Addr().String()},
		{"invalid policy", []string{"serve", "--policies", bad, audit, "--admin-listen", "127.0.0.1:0", "--authz-listen", "127.0.0.1:0"}, "bad.yaml:5: spec.action"},
		{"bad trusted proxies", []string{"serve", "--policies", good, "--authz-listen", "127.0.0.1:0", "--trusted-proxies", "-1"}, "--trusted-proxies: -1 is out of range"},
		{"bad config file", []string{"serve", "--config", filepath.Join(dir, "missing.yaml")}, "--config:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errOut := runIdgate(t, "", tt.args...)
			if code != 2 || !strings.Contains(errOut, tt.want) {
				t.Errorf("exit %d, stderr:\n%s\nwant exit 2 and %q", code, errOut, tt.want)
			}
		})
	}
}

// A flag overrides its environment variable, which overrides the file.
func TestServeFlagPrecedence(t *testing.T) {
	var f serveFlags
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	f.register(fs)
	if err := fs.Parse([]string{"--upstream", "http://flag:1"}); err != nil {
		t.Fatal(err)
	}
	t.Setenv("IDGATE_UPSTREAM", "http://env:1")
	t.Setenv("IDGATE_LISTEN", "127.0.0.1:8080")
	t.Setenv("IDGATE_POLICIES", "a.yaml, b/")
	t.Setenv("IDGATE_TRUSTED_PROXIES", "2")
	t.Setenv("IDGATE_DRY_RUN", "true")
	t.Setenv("IDGATE_PPROF", "1")
	cfg := config.Defaults()
	cfg.Listen, cfg.LogLevel = "127.0.0.1:1", "debug"
	if err := f.apply(fs, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Upstream != "http://flag:1" || cfg.Listen != "127.0.0.1:8080" || strings.Join(cfg.Policies, "|") != "a.yaml|b/" ||
		cfg.TrustedProxies != 2 || !cfg.DryRun || !cfg.Pprof || cfg.LogLevel != "debug" {
		t.Errorf("config = %+v", cfg)
	}
	if err := fs.Parse([]string{"--pprof=false"}); err != nil {
		t.Fatal(err)
	}
	if err := f.apply(fs, &cfg); err != nil || cfg.Pprof {
		t.Errorf("--pprof=false over IDGATE_PPROF: pprof %v, err %v", cfg.Pprof, err)
	}
	t.Setenv("IDGATE_TRUSTED_PROXIES", "two")
	if err := f.apply(fs, &cfg); err == nil || !strings.Contains(err.Error(), "IDGATE_TRUSTED_PROXIES") {
		t.Errorf("a bad environment value: err = %v, want it to name the variable", err)
	}
}
