package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/idgate/idgate/config"
	"github.com/idgate/idgate/server"
)

func newServeCmd() *cobra.Command {
	var configFile string
	var fl serveFlags
	cmd := &cobra.Command{
		Use:   "serve [--config FILE] [flags]",
		Short: "Enforce Istio policies as a reverse proxy, Envoy ext_authz server and forward-auth endpoint",
		Long: `Enforce Istio RequestAuthentication and AuthorizationPolicy documents in
front of HTTP services.

Every flag has an environment variable: IDGATE_ + the flag name in upper case
with "-" as "_" (--upstream is IDGATE_UPSTREAM). A flag given on the command
line overrides its environment variable, which overrides the config file.

Exit status 2: a setting is invalid, a listener address is taken, or a policy
does not load (the message names the flag, file, line and field).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if configFile == "" {
				configFile = os.Getenv("IDGATE_CONFIG")
			}
			cfg := config.Defaults()
			if configFile != "" {
				var err error
				if cfg, err = config.Load(configFile); err != nil {
					return usageErrorf("serve: --config: %v", err)
				}
			}
			if err := fl.apply(cmd.Flags(), &cfg); err != nil {
				return usageErrorf("serve: %v", err)
			}
			if err := cfg.Validate(); err != nil {
				var ce *config.Error
				if errors.As(err, &ce) && ce.File == "" {
					return usageErrorf("serve: --%s: %s", ce.Field, ce.Msg)
				}
				return usageErrorf("serve: %v", err)
			}
			level := new(slog.LevelVar)
			level.UnmarshalText([]byte(cfg.LogLevel))
			logger := slog.New(slog.NewJSONHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
			s, err := server.New(cfg, server.Options{
				Logger:     logger,
				LogLevel:   level,
				ConfigFile: configFile,
				Overrides:  func(c *config.Config) error { return fl.apply(cmd.Flags(), c) },
			})
			if err != nil {
				return usageErrorf("serve: %v", err)
			}
			if err := s.Run(cmd.Context()); err != nil {
				return fmt.Errorf("serve: %w", err)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&configFile, "config", "", "idgate YAML configuration file (env IDGATE_CONFIG)")
	fl.register(cmd.Flags())
	return cmd
}

// serveFlags are the flags of the serve contract (shared/spec/serve.md).
type serveFlags struct {
	policies       []string
	listen         string
	upstream       string
	grpcListen     string
	authzListen    string
	adminListen    string
	trustedProxies int
	audit          string
	dryRun         bool
	logLevel       string
	pprof          bool
}

func (f *serveFlags) register(fs *pflag.FlagSet) {
	fs.StringArrayVar(&f.policies, "policies", nil, "Istio YAML files or directories (repeatable), watched for changes")
	fs.StringVar(&f.listen, "listen", "", "reverse proxy listener; off when empty")
	fs.StringVar(&f.upstream, "upstream", "", "where the reverse proxy sends allowed requests")
	fs.StringVar(&f.grpcListen, "grpc-listen", "", "Envoy ext_authz gRPC (envoy.service.auth.v3.Authorization); off when empty")
	fs.StringVar(&f.authzListen, "authz-listen", "", "Envoy HTTP ext_authz and forward-auth endpoints; off when empty")
	fs.StringVar(&f.adminListen, "admin-listen", "127.0.0.1:9901", "/healthz, /readyz, /metrics")
	fs.IntVar(&f.trustedProxies, "trusted-proxies", 0, "X-Forwarded-For hops to trust for remote.ip")
	fs.StringVar(&f.audit, "audit", "-", "audit records, JSON lines: a file, or - for stdout")
	fs.BoolVar(&f.dryRun, "dry-run", false, "decide and record, never block")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn, error")
	fs.BoolVar(&f.pprof, "pprof", false, "serve Go profiles under /debug/pprof/ on the admin listener")
}

// apply puts the flags given on the command line, and the environment
// variables of those not given, over cfg.
func (f *serveFlags) apply(fs *pflag.FlagSet, cfg *config.Config) error {
	var err error
	set := func(name string, fn func(value string, fromFlag bool) error) {
		if err != nil {
			return
		}
		if fs.Changed(name) {
			err = fn("", true)
			return
		}
		env := "IDGATE_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
		if v, ok := os.LookupEnv(env); ok {
			if e := fn(v, false); e != nil {
				err = fmt.Errorf("%s: %v", env, e)
			}
		}
	}
	str := func(dst *string, flag string) func(string, bool) error {
		return func(v string, fromFlag bool) error {
			if fromFlag {
				v = flag
			}
			*dst = v
			return nil
		}
	}
	set("policies", func(v string, fromFlag bool) error {
		if fromFlag {
			cfg.Policies = f.policies
			return nil
		}
		// IDGATE_POLICIES holds a comma-separated list.
		cfg.Policies = nil
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				cfg.Policies = append(cfg.Policies, p)
			}
		}
		return nil
	})
	set("listen", str(&cfg.Listen, f.listen))
	set("upstream", str(&cfg.Upstream, f.upstream))
	set("grpc-listen", str(&cfg.GRPCListen, f.grpcListen))
	set("authz-listen", str(&cfg.AuthzListen, f.authzListen))
	set("admin-listen", str(&cfg.AdminListen, f.adminListen))
	set("audit", str(&cfg.Audit, f.audit))
	set("log-level", str(&cfg.LogLevel, f.logLevel))
	set("trusted-proxies", func(v string, fromFlag bool) error {
		if fromFlag {
			cfg.TrustedProxies = f.trustedProxies
			return nil
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("%q is not a number", v)
		}
		cfg.TrustedProxies = n
		return nil
	})
	boolean := func(dst *bool, flag bool) func(string, bool) error {
		return func(v string, fromFlag bool) error {
			if fromFlag {
				*dst = flag
				return nil
			}
			b, err := strconv.ParseBool(v)
			if err != nil {
				return fmt.Errorf("%q is not true or false", v)
			}
			*dst = b
			return nil
		}
	}
	set("dry-run", boolean(&cfg.DryRun, f.dryRun))
	set("pprof", boolean(&cfg.Pprof, f.pprof))
	return err
}
