// Command idgate is an identity-aware gateway that enforces Istio
// RequestAuthentication and AuthorizationPolicy documents for Microsoft
// Entra ID tokens, and explains, tests and lints those policies.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// exitError ends a command with a specific exit status. Commands whose
// contract has several failure statuses (verify, test, check) return it;
// any other error exits with status 2 after printing the message.
type exitError struct {
	code int
	err  error // printed to stderr when non-nil
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

// usageErrorf returns an error that exits with status 2, the status every
// command uses for bad input it cannot work with.
func usageErrorf(format string, args ...any) error {
	return &exitError{code: 2, err: fmt.Errorf(format, args...)}
}

// run executes the idgate command line and returns the process exit status.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := newRootCmd()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintln(stderr, "idgate:", ee.err)
		}
		return ee.code
	}
	fmt.Fprintln(stderr, "idgate:", err)
	return 2
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "idgate",
		Short:         "Identity-aware gateway for Istio policies and Entra ID tokens",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return &exitError{code: 2, err: err}
	})
	root.AddCommand(
		newVerifyCmd(),
		newTestCmd(),
		newCheckCmd(),
		newExplainCmd(),
		newServeCmd(),
		newDevCmd(),
		newIDPCmd(),
		newTokenCmd(),
	)
	return root
}

// quietLogger is the logger of the one-shot commands (verify, explain):
// their results are their output, so only warnings and errors of the
// parts they use (key fetches) reach stderr.
func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}
