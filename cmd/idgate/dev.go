package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/idgate/idgate/config"
	"github.com/idgate/idgate/devidp"
	"github.com/idgate/idgate/examples"
	"github.com/idgate/idgate/policy"
	"github.com/idgate/idgate/policytest"
	"github.com/idgate/idgate/server"
)

// defaultScenario is the policy test file whose policies `idgate dev`
// enforces, relative to the repository root; the binary has a copy
// (examples.DevScenario) for when it runs elsewhere.
const defaultScenario = "examples/dev-scenario.yaml"

type devFlags struct {
	idpListen, listen, upstreamListen, adminListen string
	audit, scenario, directory, logLevel           string
	rotateEvery, rotateGrace                       time.Duration
}

func newDevCmd() *cobra.Command {
	var fl devFlags
	cmd := &cobra.Command{
		Use:   "dev [flags]",
		Short: "Run idgate end to end on this machine: identity provider, gateway and an echo upstream",
		Long: `Run everything needed to see idgate work, with no Entra tenant, cluster or
Istio: the dev identity provider (Entra ID look-alike), an echo upstream that
shows the headers it receives, and idgate as a reverse proxy in front of it,
enforcing the policies of ` + defaultScenario + ` (the copy built into the
binary when the working directory has none; each jwtRule's jwksUri pointed
at the dev identity provider). It prints how to get tokens and curl
commands to try. Ctrl-C stops everything.

Exit status 2: a listen address is taken (the message names the flag), or
the scenario or directory does not load.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDev(cmd.Context(), fl, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringVar(&fl.idpListen, "idp-listen", devidp.DefaultAddr, "dev identity provider address")
	f.StringVar(&fl.listen, "listen", "127.0.0.1:8080", "gateway (reverse proxy) address")
	f.StringVar(&fl.upstreamListen, "upstream-listen", "127.0.0.1:9000", "echo upstream address")
	f.StringVar(&fl.adminListen, "admin-listen", "127.0.0.1:9901", "gateway admin address (/healthz, /readyz, /metrics)")
	f.StringVar(&fl.audit, "audit", "", "audit trail file (default a file in a temporary directory, removed on exit)")
	f.StringVar(&fl.scenario, "scenario", defaultScenario, "policy test file whose policies the gateway enforces")
	f.StringVar(&fl.directory, "directory", "", "identity provider directory YAML (default the built-in one)")
	f.DurationVar(&fl.rotateEvery, "rotate-every", 0, "rotate the signing key at this interval (0: only on `idgate idp rotate`)")
	f.DurationVar(&fl.rotateGrace, "rotate-grace", devidp.DefaultRotationGrace, "how long a rotated-out key stays published")
	f.StringVar(&fl.logLevel, "log-level", "warn", "debug, info, warn, error")
	return cmd
}

func runDev(ctx context.Context, fl devFlags, stdout, stderr io.Writer) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(fl.logLevel)); err != nil {
		return usageErrorf("dev: --log-level: %v", err)
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	dir, err := loadDirectory(fl.directory)
	if err != nil {
		return usageErrorf("dev: --directory: %v", err)
	}
	tf, err := readScenario(fl.scenario)
	if err != nil {
		return usageErrorf("dev: --scenario: %v", err)
	}
	docs, err := tf.Documents()
	if err != nil {
		return usageErrorf("dev: --scenario: %v", err)
	}

	tmp, err := os.MkdirTemp("", "idgate-dev-")
	if err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	defer os.RemoveAll(tmp)
	auditFile := fl.audit
	if auditFile == "" {
		auditFile = filepath.Join(tmp, "audit.jsonl")
	}

	idpLn, err := net.Listen("tcp", fl.idpListen)
	if err != nil {
		return usageErrorf("dev: --idp-listen: %v", err)
	}
	defer idpLn.Close()
	upLn, err := net.Listen("tcp", fl.upstreamListen)
	if err != nil {
		return usageErrorf("dev: --upstream-listen: %v", err)
	}
	defer upLn.Close()

	idp, idpURL, err := newIDP(idpLn, dir, fl.rotateGrace, logger.With("component", "idp"))
	if err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	if dir.PointJWKSAt(docs, idpURL) == 0 {
		logger.Warn("no jwtRule of the scenario trusts a tenant of the directory: tokens from the dev identity provider will not verify", "scenario", tf.Path)
	}
	policies := filepath.Join(tmp, "policies.yaml")
	if err := writePolicies(policies, docs); err != nil {
		return fmt.Errorf("dev: %w", err)
	}

	cfg := config.Defaults()
	cfg.Policies = []string{policies}
	cfg.Listen = fl.listen
	cfg.Upstream = "http://" + upLn.Addr().String()
	cfg.AdminListen = fl.adminListen
	cfg.Audit = auditFile
	cfg.LogLevel = fl.logLevel
	cfg.Timeouts.Shutdown = config.Duration(5 * time.Second)
	if err := cfg.Validate(); err != nil {
		return usageErrorf("dev: %v", err)
	}
	var ready sync.Once
	srv, err := server.New(cfg, server.Options{
		Logger: logger.With("component", "gateway"),
		Ready: func(addrs map[string]net.Addr) {
			ready.Do(func() {
				printDev(stdout, devInfo{
					idp: idpURL, gateway: "http://" + addrs["listen"].String(), upstream: cfg.Upstream,
					admin: "http://" + addrs["admin-listen"].String(), scenario: tf.Path,
					policies: policies, audit: auditFile, auditKept: fl.audit != "", dir: dir,
				})
			})
		},
	})
	if err != nil {
		var se *server.StartError
		if errors.As(err, &se) {
			return usageErrorf("dev: %v", se)
		}
		return usageErrorf("dev: %v", err)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, 3)
	var wg sync.WaitGroup
	run := func(fn func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(ctx); err != nil {
				errs <- err
			}
			cancel() // one part stopping stops them all
		}()
	}
	run(func(ctx context.Context) error {
		return serveIDP(ctx, idpLn, idp, fl.rotateEvery, logger)
	})
	run(func(ctx context.Context) error { return serveEcho(ctx, upLn, logger) })
	run(srv.Run)
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	if len(all) > 0 {
		return fmt.Errorf("dev: %w", errors.Join(all...))
	}
	fmt.Fprintln(stdout, "idgate dev stopped")
	return nil
}

// writePolicies writes docs as one multi-document YAML file (JSON is
// YAML), with the protobuf JSON field names Istio's YAML uses.
func writePolicies(path string, docs []*policy.Document) error {
	var b strings.Builder
	for i, d := range docs {
		var spec proto.Message = d.RequestAuthentication
		if d.AuthorizationPolicy != nil {
			spec = d.AuthorizationPolicy
		}
		data, err := protojson.Marshal(spec)
		if err != nil {
			return fmt.Errorf("policy %s: %w", d.ID(), err)
		}
		meta := map[string]any{"name": d.Name, "namespace": d.Namespace}
		if len(d.Labels) > 0 {
			meta["labels"] = d.Labels
		}
		if len(d.Annotations) > 0 {
			meta["annotations"] = d.Annotations
		}
		out, err := json.Marshal(map[string]any{
			"apiVersion": d.APIVersion, "kind": d.Kind, "metadata": meta, "spec": json.RawMessage(data),
		})
		if err != nil {
			return fmt.Errorf("policy %s: %w", d.ID(), err)
		}
		if i > 0 {
			b.WriteString("---\n")
		}
		b.Write(out)
		b.WriteString("\n")
	}
	return os.WriteFile(path, []byte(b.String()), 0o600)
}

// maxEchoBody bounds the request body the echo upstream reads.
const maxEchoBody = 1 << 20

// serveEcho serves the echo upstream on ln until ctx ends: every request
// is answered 200 with a JSON account of its method, path and headers.
func serveEcho(ctx context.Context, ln net.Listener, logger *slog.Logger) error {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, io.LimitReader(r.Body, maxEchoBody))
		headers := map[string]string{}
		for name, vs := range r.Header {
			headers[strings.ToLower(name)] = strings.Join(vs, ", ")
		}
		headers["host"] = r.Host
		data, _ := json.MarshalIndent(map[string]any{
			"upstream": "idgate dev echo",
			"method":   r.Method,
			"path":     r.URL.RequestURI(),
			"headers":  headers,
		}, "", "  ")
		w.Header().Set("Content-Type", "application/json")
		w.Write(append(data, '\n'))
	})
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}
	return serveUntil(ctx, srv, ln, "echo upstream")
}

type devInfo struct {
	idp, gateway, upstream, admin string
	scenario, policies, audit     string
	auditKept                     bool
	dir                           *devidp.Directory
}

// A devExample is one request printed for the user to try.
type devExample struct {
	status int
	what   string
	method string
	path   string
	token  string // idgate token flags; "" for none, "-" for a garbage token
}

var devExamples = []devExample{
	{200, "alice reads with her token", "GET", "/api/orders", "--user alice"},
	{200, "localhost may read without a token (from elsewhere: 403)", "GET", "/api/orders", ""},
	{401, "a token that is not one", "GET", "/api/orders", "-"},
	{401, "an expired token, even from localhost", "GET", "/api/orders", "--user alice --expired"},
	{403, "alice is not in the admins group", "GET", "/admin/users", "--user alice"},
	{200, "admin is", "GET", "/admin/users", "--user admin"},
	{200, "an app with the Orders.Admin role", "GET", "/admin", "--app orders-ops"},
	{200, "alice writes: her token has Orders.Write", "POST", "/api/orders", "--user alice"},
	{403, "a token with only Orders.Read may not write", "POST", "/api/orders", "--user alice --scope Orders.Read"},
	{403, "an app-only token has no scopes, so no Orders.Write", "POST", "/api/orders", "--app orders-client"},
	{200, "a v1 token (iss https://sts.windows.net/<tid>/)", "GET", "/api/orders", "--user bob --version 1"},
}

// printDev prints what runs where, how to get tokens, and curl commands
// ready to paste, each after a comment with the status it gets.
func printDev(w io.Writer, in devInfo) {
	t := in.dir.Tenants[0]
	var users []string
	for _, u := range t.Users {
		users = append(users, u.Name)
	}
	sort.Strings(users)
	auditNote := "(removed on exit; --audit FILE keeps it)"
	if in.auditKept {
		auditNote = ""
	}
	fmt.Fprintf(w, `idgate dev is running (development only; Ctrl-C stops it)

  identity provider  %s   tenant %s, users %s (password %q)
  gateway            %s   reverse proxy, policies of %s
  echo upstream      %s   answers with the headers it received
  admin              %s/readyz
  policies in force  %s
  audit trail        %s %s

Get a token (if idgate is not on your PATH: alias idgate='go run ./cmd/idgate'):
  idgate token --idp %s --user alice          # delegated, Entra password grant
  idgate token --idp %s --app orders-client   # app-only, client_credentials
  idgate token --idp %s --user alice -o json  # the whole token response

Try it (each prints the echo's answer or idgate's, then the status):
`, in.idp, t.ID, strings.Join(users, ", "), devidp.DefaultPassword,
		in.gateway, in.scenario, in.upstream, in.admin, in.policies, in.audit, auditNote,
		in.idp, in.idp, in.idp)
	for _, e := range devExamples {
		fmt.Fprintf(w, "\n  # %d: %s\n  %s\n", e.status, e.what, e.curl(in.idp, in.gateway))
	}
	fmt.Fprintf(w, "\nEvery decision is one JSON line in the audit trail: tail -f %s\n", in.audit)
}

// curl returns the example as a shell command.
func (e devExample) curl(idp, gateway string) string {
	var b strings.Builder
	b.WriteString("curl -s -w '%{http_code}\\n'")
	if e.method != "GET" {
		b.WriteString(" -X " + e.method)
	}
	switch e.token {
	case "":
	case "-":
		b.WriteString(` -H "Authorization: Bearer not-a-token"`)
	default:
		fmt.Fprintf(&b, ` -H "Authorization: Bearer $(idgate token --idp %s %s)"`, idp, e.token)
	}
	b.WriteString(" " + gateway + e.path)
	return b.String()
}

// readScenario reads the policy test file at path. The default scenario
// comes from the binary when the working directory has no copy of it (an
// installed idgate run anywhere); a copy there, edited or not, is read.
func readScenario(path string) (*policytest.File, error) {
	tf, err := policytest.ReadFile(path)
	if err != nil && path == defaultScenario && errors.Is(err, os.ErrNotExist) {
		return policytest.Parse(path+" (built in)", examples.DevScenario)
	}
	return tf, err
}
