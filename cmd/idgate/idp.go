package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/idgate/idgate/devidp"
)

func newIDPCmd() *cobra.Command {
	var (
		listen, directory string
		rotateEvery       time.Duration
		rotateGrace       time.Duration
		printDirectory    bool
	)
	cmd := &cobra.Command{
		Use:   "idp [--listen ADDR] [--directory FILE]",
		Short: "Run the development identity provider (Entra ID look-alike) on its own",
		Long: `Run the development identity provider: Entra ID's discovery documents,
keys, token, authorize and end-session endpoints for the tenants, users and
apps of a directory (the built-in one unless --directory names a file), plus
the dev-only /_dev/token and /_dev/rotate. For development and tests only.

Exit status 2: the listen address is taken or the directory is invalid.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if printDirectory {
				cmd.OutOrStdout().Write(devidp.DefaultDirectoryYAML())
				return nil
			}
			dir, err := loadDirectory(directory)
			if err != nil {
				return usageErrorf("idp: --directory: %v", err)
			}
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return usageErrorf("idp: --listen: %v", err)
			}
			logger := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			p, base, err := newIDP(ln, dir, rotateGrace, logger)
			if err != nil {
				ln.Close()
				return fmt.Errorf("idp: %w", err)
			}
			printIDP(cmd.OutOrStdout(), p, base)
			return serveIDP(cmd.Context(), ln, p, rotateEvery, logger)
		},
	}
	f := cmd.Flags()
	f.StringVar(&listen, "listen", devidp.DefaultAddr, "address to serve on")
	f.StringVar(&directory, "directory", "", "directory YAML file (tenants, users, groups, apps); default the built-in one")
	f.DurationVar(&rotateEvery, "rotate-every", 0, "rotate the signing key at this interval (0: only on `idgate idp rotate`)")
	f.DurationVar(&rotateGrace, "rotate-grace", devidp.DefaultRotationGrace, "how long a rotated-out key stays published")
	f.BoolVar(&printDirectory, "print-directory", false, "print the built-in directory YAML and exit")
	cmd.AddCommand(newIDPRotateCmd())
	return cmd
}

func newIDPRotateCmd() *cobra.Command {
	var idp string
	cmd := &cobra.Command{
		Use:   "rotate [--idp URL]",
		Short: "Rotate the running dev identity provider's signing key",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			kid, err := (&devidp.Client{BaseURL: idp}).Rotate(cmd.Context())
			if err != nil {
				return fmt.Errorf("idp rotate: %w", err)
			}
			fmt.Fprintln(cmd.OutOrStdout(), kid)
			return nil
		},
	}
	cmd.Flags().StringVar(&idp, "idp", "http://"+devidp.DefaultAddr, "URL of the dev identity provider")
	return cmd
}

func loadDirectory(path string) (*devidp.Directory, error) {
	if path == "" {
		return devidp.DefaultDirectory(), nil
	}
	return devidp.LoadDirectory(path)
}

// newIDP makes a provider whose URLs are those of ln.
func newIDP(ln net.Listener, dir *devidp.Directory, grace time.Duration, logger *slog.Logger) (*devidp.Provider, string, error) {
	base := "http://" + ln.Addr().String()
	p, err := devidp.New(dir, devidp.Options{BaseURL: base, RotationGrace: grace, Logger: logger})
	return p, base, err
}

// serveIDP serves p on ln until ctx ends, rotating keys every interval
// (never when zero).
func serveIDP(ctx context.Context, ln net.Listener, p *devidp.Provider, rotateEvery time.Duration, logger *slog.Logger) error {
	srv := &http.Server{
		Handler:           p,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if rotateEvery > 0 {
		go p.RotateEvery(ctx, rotateEvery)
	}
	return serveUntil(ctx, srv, ln, "identity provider")
}

// serveUntil serves srv on ln until ctx ends, then shuts it down, giving
// in-flight requests a few seconds; name labels its errors.
func serveUntil(ctx context.Context, srv *http.Server, ln net.Listener, name string) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("%s: %w", name, err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: shutdown: %w", name, err)
	}
	return nil
}

// printIDP says where the provider serves what.
func printIDP(w io.Writer, p *devidp.Provider, base string) {
	fmt.Fprintf(w, "dev identity provider (development only) at %s\n", base)
	for _, t := range p.Directory().Tenants {
		fmt.Fprintf(w, "  tenant %s (%s)\n", t.ID, t.Domain)
		fmt.Fprintf(w, "    issuers    https://login.microsoftonline.com/%s/v2.0  https://sts.windows.net/%s/\n", t.ID, t.ID)
		fmt.Fprintf(w, "    jwksUri    %s  (v1: %s)\n", devidp.JWKSURI(base, t.ID), devidp.JWKSURIv1(base, t.ID))
		fmt.Fprintf(w, "    discovery  %s/%s/v2.0/.well-known/openid-configuration\n", base, t.ID)
	}
	fmt.Fprintf(w, "  tokens: idgate token --idp %s --user alice | --app orders-client\n", base)
}
