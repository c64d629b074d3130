// Package server assembles idgate serve: it loads the configuration and
// policies, builds the engine with its key sets, audit sink and metrics,
// opens every listener (reverse proxy, ext_authz gRPC, HTTP ext_authz and
// forward-auth, admin), reloads policies when their files change, and
// shuts down gracefully.
package server

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	securityv1beta1 "istio.io/api/security/v1beta1"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/idgate/idgate/audit"
	"github.com/idgate/idgate/authn"
	"github.com/idgate/idgate/config"
	"github.com/idgate/idgate/engine"
	"github.com/idgate/idgate/extauthz"
	"github.com/idgate/idgate/forwardauth"
	"github.com/idgate/idgate/keyset"
	"github.com/idgate/idgate/metrics"
	"github.com/idgate/idgate/policy"
	"github.com/idgate/idgate/proxy"
	"github.com/idgate/idgate/token"
)

// StartError is a problem that stops start-up (exit status 2 in the
// serve contract): it names the setting (flag) and, for policies, the
// file, line and field.
type StartError struct {
	// Setting is the flag or config key at fault ("listen", "policies").
	Setting string
	Err     error
}

func (e *StartError) Error() string { return fmt.Sprintf("--%s: %v", e.Setting, e.Err) }

func (e *StartError) Unwrap() error { return e.Err }

// Options are what Run needs besides the configuration.
type Options struct {
	// Logger receives operational logs; nil means slog.Default().
	Logger *slog.Logger
	// PollInterval is how often policy files are checked for changes
	// (default 1s).
	PollInterval time.Duration
	// Ready, when set, is called once every listener is open, with their
	// addresses by setting name: tests and `idgate dev` learn ports this
	// way.
	Ready func(addrs map[string]net.Addr)
	// ConfigFile, when set, is the configuration file cfg came from; it
	// is watched like the policies. Overrides re-applies the command
	// line and environment to a reloaded file. LogLevel, when set, is the
	// level the Logger logs at; a reload changes it.
	ConfigFile string
	Overrides  func(*config.Config) error
	LogLevel   *slog.LevelVar
}

// Server is a running idgate serve.
type Server struct {
	cfg  config.Config
	opts Options
	log  *slog.Logger

	keys    *keyset.Registry
	engine  *engine.Engine
	audit   *audit.Writer
	metrics *metrics.Metrics
	reg     *prometheus.Registry

	// keysInUse are the key sets of the policies in force; keysLoading
	// collects those of the policies being compiled. Only the goroutine
	// that loads policies touches them.
	keysInUse, keysLoading []*keyset.Set

	listeners []*listener
	// policyPrint and configPrint are the fingerprints of the policy
	// files and the configuration file in force.
	policyPrint [sha256.Size]byte
	configPrint [sha256.Size]byte
	// loaded is set once policies are in force (always, after New).
	loaded atomic.Bool
}

// listener is one open listener and how to serve and stop it.
type listener struct {
	setting  string
	ln       net.Listener
	serve    func(net.Listener) error
	shutdown func(context.Context) error
}

// New loads policies, builds the engine and opens every listener. It does
// not serve yet; a *StartError says what stopped it.
func New(cfg config.Config, opts Options) (*Server, error) {
	s, err := newServer(cfg, opts)
	if err != nil && s != nil {
		s.closeListeners()
		s.keys.Close()
		if s.audit != nil {
			s.audit.Close()
		}
		return nil, err
	}
	return s, err
}

func newServer(cfg config.Config, opts Options) (*Server, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = time.Second
	}
	s := &Server{cfg: cfg, opts: opts, log: opts.Logger, keys: keyset.NewRegistry(), reg: prometheus.NewRegistry()}
	s.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s.metrics = metrics.New(s.reg)
	s.metrics.ObserveKeys(s.keys.Status)
	overflow, err := audit.ParseOverflow(cfg.AuditOnFull)
	if err != nil {
		return nil, &StartError{Setting: "audit-on-full", Err: err}
	}
	s.audit, err = audit.Open(cfg.Audit, audit.Options{Overflow: overflow, Logger: s.log})
	if err != nil {
		return s, &StartError{Setting: "audit", Err: err}
	}
	s.metrics.ObserveAudit(s.audit.Stats)
	files, err := policy.Files(cfg.Policies...)
	if err != nil {
		return s, &StartError{Setting: "policies", Err: err}
	}
	docs, err := policy.Load(cfg.Policies...)
	if err != nil {
		return s, &StartError{Setting: "policies", Err: err}
	}
	s.policyPrint = fingerprint(files)
	if opts.ConfigFile != "" {
		s.configPrint = fingerprint([]string{opts.ConfigFile})
	}
	var cache *authn.Cache
	if n := cfg.Keys.TokenCacheSize; n > 0 {
		cache = authn.NewCache(authn.CacheConfig{MaxEntries: n})
		s.metrics.ObserveTokenCache(cache.Stats)
	}
	s.engine, err = engine.New(docs, engine.Options{
		TokenCache:     cache,
		Keys:           s.ruleKeys,
		Skew:           cfg.Keys.ClockSkew.D(),
		AllowedTenants: cfg.Keys.AllowedTenants,
		DryRun:         cfg.DryRun,
		Audit:          s.audit,
		Observer:       s.metrics,
	})
	if err != nil {
		return s, &StartError{Setting: "policies", Err: err}
	}
	s.keysInUse = s.keysLoading
	s.loaded.Store(true)
	if err := s.open(); err != nil {
		return s, err
	}
	return s, nil
}

// ruleKeys gives a jwtRule the shared key set of its source, as Istio
// does: inline jwks, else jwksUri, else OIDC discovery from the issuer.
func (s *Server) ruleKeys(r *securityv1beta1.JWTRule) (token.KeySource, error) {
	k := s.cfg.Keys
	c := keyset.Config{
		RefreshInterval:    k.RefreshInterval.D(),
		MinRefreshInterval: k.MinRefreshInterval.D(),
		FetchTimeout:       k.FetchTimeout.D(),
		MaxStale:           k.MaxStale.D(),
		Logger:             s.log,
	}
	switch {
	case r.GetJwks() != "":
		c.JWKS = []byte(r.GetJwks())
	case r.GetJwksUri() != "":
		c.JWKSURI = r.GetJwksUri()
	default:
		c.Issuer, c.Discovery = r.GetIssuer(), true
	}
	set, err := s.keys.Get(c)
	if err == nil {
		s.keysLoading = append(s.keysLoading, set)
	}
	return set, err
}

// open opens the listeners the configuration names, so that a taken
// address stops start-up before anything is served.
func (s *Server) open() error {
	admin := http.NewServeMux()
	admin.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok\n"))
	})
	admin.HandleFunc("/readyz", s.readyz)
	admin.Handle("/metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}))
	if s.cfg.Pprof {
		admin.HandleFunc("/debug/pprof/", pprof.Index)
		admin.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		admin.HandleFunc("/debug/pprof/profile", pprof.Profile)
		admin.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		admin.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	if err := s.listen("admin-listen", s.cfg.AdminListen, admin); err != nil {
		return err
	}
	if err := s.openProxy(); err != nil {
		return err
	}
	if addr := s.cfg.AuthzListen; addr != "" {
		if s.cfg.TrustedProxies == 0 {
			s.log.Warn("authz-listen with trusted-proxies 0: source.ip and remote.ip are the asking proxy itself, so ipBlocks rules see the proxy, not the client; set trusted-proxies to 1 behind nginx, Traefik or Caddy")
		}
		h := forwardauth.Handler(s.engine, forwardauth.Options{
			TrustedProxies: s.cfg.TrustedProxies,
			Logger:         s.log,
			Next: extauthz.HTTPHandler(s.engine, extauthz.Options{
				TrustedProxies: s.cfg.TrustedProxies,
				Logger:         s.log,
			}),
		})
		if err := s.listen("authz-listen", addr, h); err != nil {
			return err
		}
	}
	if addr := s.cfg.GRPCListen; addr != "" {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return &StartError{Setting: "grpc-listen", Err: err}
		}
		gs := extauthz.NewGRPCServer(s.engine, extauthz.Options{TrustedProxies: s.cfg.TrustedProxies, Logger: s.log})
		s.listeners = append(s.listeners, &listener{setting: "grpc-listen", ln: ln, serve: gs.Serve,
			shutdown: func(ctx context.Context) error {
				done := make(chan struct{})
				go func() { gs.GracefulStop(); close(done) }()
				select {
				case <-done:
					return nil
				case <-ctx.Done():
					gs.Stop()
					return ctx.Err()
				}
			}})
	}
	return nil
}

// openProxy opens the reverse proxy listener, when there is one.
func (s *Server) openProxy() error {
	if s.cfg.Listen == "" {
		return nil
	}
	up, err := url.Parse(s.cfg.Upstream)
	if err != nil {
		return &StartError{Setting: "upstream", Err: err}
	}
	t := s.cfg.UpstreamTLS
	p, err := proxy.New(s.engine, up, proxy.Options{
		TrustedProxies:     s.cfg.TrustedProxies,
		UpstreamTimeout:    s.cfg.Timeouts.Upstream.D(),
		UpstreamCAFile:     t.CAFile,
		UpstreamCertFile:   t.CertFile,
		UpstreamKeyFile:    t.KeyFile,
		UpstreamServerName: t.ServerName,
		Logger:             s.log,
	})
	if err != nil {
		return &StartError{Setting: "upstream", Err: err}
	}
	srv, err := proxy.NewServer(p, proxy.ServerOptions{
		CertFile:          s.cfg.TLS.CertFile,
		KeyFile:           s.cfg.TLS.KeyFile,
		ReadHeaderTimeout: s.cfg.Timeouts.ReadHeader.D(),
		IdleTimeout:       s.cfg.Timeouts.Idle.D(),
		MaxHeaderBytes:    s.cfg.Limits.MaxHeaderBytes,
		Logger:            s.log,
	})
	if err != nil {
		return &StartError{Setting: "listen", Err: err}
	}
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return &StartError{Setting: "listen", Err: err}
	}
	s.listeners = append(s.listeners, &listener{setting: "listen", ln: ln, serve: srv.Serve,
		shutdown: func(ctx context.Context) error {
			err := srv.Shutdown(ctx)
			p.CloseIdleConnections()
			return err
		}})
	return nil
}

// listen opens addr for an HTTP handler.
func (s *Server) listen(setting, addr string, h http.Handler) error {
	if addr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return &StartError{Setting: setting, Err: err}
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: s.cfg.Timeouts.ReadHeader.D(),
		IdleTimeout:       s.cfg.Timeouts.Idle.D(),
		MaxHeaderBytes:    s.cfg.Limits.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	s.listeners = append(s.listeners, &listener{setting: setting, ln: ln, serve: srv.Serve, shutdown: srv.Shutdown})
	return nil
}

func (s *Server) closeListeners() {
	for _, l := range s.listeners {
		l.ln.Close()
	}
}

// Addrs returns the listeners' addresses by setting name.
func (s *Server) Addrs() map[string]net.Addr {
	m := map[string]net.Addr{}
	for _, l := range s.listeners {
		m[l.setting] = l.ln.Addr()
	}
	return m
}

// Engine returns the engine that decides requests.
func (s *Server) Engine() *engine.Engine { return s.engine }

// readyz answers 200 once policies are loaded and every key set has been
// fetched at least once; 503 with the reason before.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if err := s.ready(); err != nil {
		http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.Write([]byte("ready\n"))
}

func (s *Server) ready() error {
	if !s.loaded.Load() {
		return errors.New("policies not loaded")
	}
	for _, st := range s.keys.Status() {
		if !st.Ready {
			msg := "key set " + st.Source + " not fetched yet"
			if st.LastError != nil {
				msg += ": " + st.LastError.Error()
			}
			return errors.New(msg)
		}
	}
	return nil
}

// Run serves until ctx ends, then shuts down: listeners stop accepting,
// in-flight requests finish (up to the shutdown timeout), key refreshers
// stop. It returns the first serving error, or nil after a clean
// shutdown.
func (s *Server) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.keys.Start(ctx)
	s.prefetch(ctx)

	errc := make(chan error, len(s.listeners))
	for _, l := range s.listeners {
		go func() {
			if err := l.serve(l.ln); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
				errc <- fmt.Errorf("%s: %w", l.setting, err)
			}
		}()
		s.log.Info("listening", "setting", l.setting, "addr", l.ln.Addr().String())
	}
	if s.opts.Ready != nil {
		s.opts.Ready(s.Addrs())
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.watch(ctx)
	}()

	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	cancel()
	s.log.Info("shutting down", "timeout", s.cfg.Timeouts.Shutdown.D().String())
	sctx, scancel := context.WithTimeout(context.Background(), s.cfg.Timeouts.Shutdown.D())
	defer scancel()
	for _, l := range s.listeners {
		if serr := l.shutdown(sctx); serr != nil && err == nil {
			err = fmt.Errorf("%s: shutdown: %w", l.setting, serr)
		}
	}
	wg.Wait()
	s.keys.Close()
	if cerr := s.closeAudit(sctx); cerr != nil && err == nil {
		err = cerr
	}
	return err
}

// closeAudit writes every queued audit record, waiting at most until ctx
// ends (a stuck disk must not hang shutdown forever).
func (s *Server) closeAudit(ctx context.Context) error {
	done := make(chan error, 1)
	go func() { done <- s.audit.Close() }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("audit: %w", err)
		}
		return nil
	case <-ctx.Done():
		st := s.audit.Stats()
		return fmt.Errorf("audit: %d records still pending at the shutdown deadline", st.Pending)
	}
}

// prefetch asks every key set for its keys once, in the background, so
// that /readyz turns ready without waiting for the first token.
func (s *Server) prefetch(ctx context.Context) {
	for _, d := range s.engine.Documents() {
		for _, r := range d.RequestAuthentication.GetJwtRules() {
			ks, err := s.ruleKeys(r)
			if err != nil {
				continue
			}
			go func() {
				if _, err := ks.Keys(ctx); err != nil {
					s.log.Warn("first key fetch failed", "issuer", r.GetIssuer(), "err", err)
				}
			}()
		}
	}
}

// watch reloads the policies whenever their files change.
func (s *Server) watch(ctx context.Context) {
	t := time.NewTicker(s.opts.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.reloadConfigIfChanged()
		s.reloadIfChanged()
	}
}

// reloadConfigIfChanged applies a changed configuration file: the
// policies it names and the log level take effect at once; a change to a
// setting that needs new listeners or connections is logged as needing a
// restart. An invalid file is rejected and the configuration in force
// stays.
func (s *Server) reloadConfigIfChanged() {
	if s.opts.ConfigFile == "" {
		return
	}
	print := fingerprint([]string{s.opts.ConfigFile})
	if print == s.configPrint {
		return
	}
	s.configPrint = print
	cfg, err := config.Load(s.opts.ConfigFile)
	if err == nil && s.opts.Overrides != nil {
		err = s.opts.Overrides(&cfg)
	}
	if err == nil {
		err = cfg.Validate()
	}
	s.metrics.ConfigReloaded(err)
	if err != nil {
		s.log.Error("configuration reload rejected: the configuration in force stays", "file", s.opts.ConfigFile, "err", err)
		return
	}
	if !slices.Equal(cfg.Policies, s.cfg.Policies) {
		s.cfg.Policies = cfg.Policies
		s.policyPrint = [sha256.Size]byte{} // reload them on this tick
	}
	if cfg.LogLevel != s.cfg.LogLevel && s.opts.LogLevel != nil {
		var l slog.Level
		if l.UnmarshalText([]byte(cfg.LogLevel)) == nil {
			s.opts.LogLevel.Set(l)
			s.cfg.LogLevel = cfg.LogLevel
		}
	}
	if changed := restartSettings(s.cfg, cfg); len(changed) > 0 {
		s.log.Warn("configuration changed in settings that apply only after a restart", "settings", changed)
	}
	s.log.Info("configuration reloaded", "file", s.opts.ConfigFile)
}

// restartSettings names the settings that differ between the running
// configuration and a reloaded one, other than those a reload applies.
func restartSettings(running, next config.Config) []string {
	next.Policies, next.LogLevel = running.Policies, running.LogLevel
	var changed []string
	rv, nv := reflect.ValueOf(running), reflect.ValueOf(next)
	for i := 0; i < rv.NumField(); i++ {
		if !rv.Type().Field(i).IsExported() {
			continue // where the configuration was read from
		}
		if !reflect.DeepEqual(rv.Field(i).Interface(), nv.Field(i).Interface()) {
			name, _, _ := strings.Cut(rv.Type().Field(i).Tag.Get("yaml"), ",")
			changed = append(changed, name)
		}
	}
	return changed
}

// reloadIfChanged reloads the policies when the files' contents changed.
// A set that does not load or compile is rejected with a log line, and
// the last good set keeps serving.
func (s *Server) reloadIfChanged() {
	files, err := policy.Files(s.cfg.Policies...)
	if err != nil {
		// Report a path that cannot be listed once, not on every tick.
		if print := sha256.Sum256([]byte(err.Error())); print != s.policyPrint {
			s.policyPrint = print
			s.metrics.Reloaded(err)
			s.log.Error("policy reload rejected: the last good policies stay in force", "err", err)
		}
		return
	}
	print := fingerprint(files)
	if print == s.policyPrint {
		return
	}
	s.policyPrint = print
	docs, err := policy.Load(s.cfg.Policies...)
	if err != nil {
		s.metrics.Reloaded(err) // the engine reports its own outcomes
	} else {
		s.keysLoading = nil
		if err = s.engine.Reload(docs); err == nil {
			s.keysInUse = s.keysLoading
		}
		// Key sets the policies in force do not use (any more, or made by
		// a rejected set) are not fetched and do not hold /readyz back.
		s.keys.Retain(s.keysInUse)
	}
	if err != nil {
		s.log.Error("policy reload rejected: the last good policies stay in force", "err", err)
		return
	}
	s.log.Info("policies reloaded", "documents", len(docs))
}
