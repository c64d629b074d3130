package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/idgate/idgate/keyset"
	"github.com/idgate/idgate/token"
)

// maxTokenInput bounds what verify reads from stdin: more than any token
// it accepts (token.MaxSize) plus generous white space.
const maxTokenInput = 1 << 20

type verifyOptions struct {
	jwksFile  string
	jwksURI   string
	discovery bool
	issuers   []string
	audiences []string
	at        string
	skew      time.Duration
	output    string
}

func newVerifyCmd() *cobra.Command {
	var o verifyOptions
	cmd := &cobra.Command{
		Use:   "verify [--jwks FILE | --jwks-uri URL | --issuer-discovery] [--issuer ISS]... [--audience AUD]... [--at UNIX_SECONDS] [--skew DURATION] [-o json] TOKEN|-",
		Short: "Check one token the way the gateway would and say why it is or is not accepted",
		Long: `Verify checks one token the way the gateway would and says why it is or is
not accepted.

Exit status 0: valid; the verified header and claims are printed.
Exit status 1: invalid; one line "invalid: CODE: detail", where CODE is one
of malformed, unsupported_alg, unknown_kid, alg_not_allowed, bad_signature,
wrong_issuer, expired, not_yet_valid, wrong_audience.
Exit status 2: usage or key-source problem (unreadable file, JWKS not JSON,
fetch failed).

TOKEN "-" reads the token from stdin; surrounding white space and a leading
"Bearer " are ignored.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runVerify(cmd.Context(), o, args[0], cmd.InOrStdin(), cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.jwksFile, "jwks", "", "`FILE` holding the JWK Set to verify with")
	f.StringVar(&o.jwksURI, "jwks-uri", "", "`URL` of the JWK Set to verify with")
	f.BoolVar(&o.discovery, "issuer-discovery", false, "fetch the keys through the OIDC discovery document of the token's issuer, which must be one of --issuer")
	f.StringArrayVar(&o.issuers, "issuer", nil, "accepted issuer `ISS` (repeatable; may contain {tenantid}); none = any issuer")
	f.StringArrayVar(&o.audiences, "audience", nil, "accepted audience `AUD` (repeatable); none = not checked")
	f.StringVar(&o.at, "at", "", "check times as of `UNIX_SECONDS` (default now)")
	f.DurationVar(&o.skew, "skew", token.DefaultSkew, "allowed clock skew for exp, nbf and iat")
	f.StringVarP(&o.output, "output", "o", "text", "output format: text or json")
	return cmd
}

func runVerify(ctx context.Context, o verifyOptions, arg string, stdin io.Reader, stdout io.Writer) error {
	if o.output != "text" && o.output != "json" {
		return usageErrorf("verify: -o must be text or json, not %q", o.output)
	}
	if o.skew < 0 {
		return usageErrorf("verify: --skew %s is negative", o.skew)
	}
	now := time.Now
	if o.at != "" {
		sec, err := strconv.ParseInt(o.at, 10, 64)
		if err != nil || sec < 0 {
			return usageErrorf("verify: --at %q is not a number of seconds since 1970", o.at)
		}
		now = func() time.Time { return time.Unix(sec, 0) }
	}
	sources := 0
	for _, set := range []bool{o.jwksFile != "", o.jwksURI != "", o.discovery} {
		if set {
			sources++
		}
	}
	if sources != 1 {
		return usageErrorf("verify: give exactly one of --jwks, --jwks-uri and --issuer-discovery")
	}
	if o.discovery && len(o.issuers) == 0 {
		return usageErrorf("verify: --issuer-discovery needs --issuer: keys are fetched only for an accepted issuer")
	}

	raw := arg
	if arg == "-" {
		data, err := io.ReadAll(io.LimitReader(stdin, maxTokenInput))
		if err != nil {
			return usageErrorf("verify: reading the token from stdin: %v", err)
		}
		raw = string(data)
	}
	raw = token.TrimInput(raw)

	cfg := token.Config{Issuers: o.issuers, Audiences: o.audiences, Skew: o.skew, Now: now}
	if o.skew == 0 {
		cfg.Skew = -1 // none at all; a zero Config.Skew means the default
	}
	// A Verifier without keys yet, to check the configuration and the
	// token's issuer before anything is fetched.
	cfg.Keys = token.StaticKeys{}
	v, err := token.NewVerifier(cfg)
	if err != nil {
		return usageErrorf("verify: %v", err)
	}
	// Keys are read before the token is looked at, so that a key-source
	// problem is reported as one whatever the token. Discovery needs the
	// token's issuer first.
	var set *keyset.Set
	if !o.discovery {
		if set, err = loadKeys(ctx, keyset.Config{File: o.jwksFile, JWKSURI: o.jwksURI}); err != nil {
			return err
		}
		defer set.Close()
	}
	p, err := token.Parse(raw)
	if err != nil {
		return verifyResult(stdout, o.output, nil, err)
	}
	if o.discovery {
		iss := p.Unverified.Issuer
		if !v.AcceptsIssuer(iss, p.Unverified.TenantID) {
			return usageErrorf("verify: the token's iss %q is not one of --issuer; its discovery document is not fetched", iss)
		}
		if set, err = loadKeys(ctx, keyset.Config{Issuer: iss, Discovery: true}); err != nil {
			return err
		}
		defer set.Close()
	}
	cfg.Keys = set
	if v, err = token.NewVerifier(cfg); err != nil {
		return usageErrorf("verify: %v", err)
	}
	tok, err := v.VerifyParsed(ctx, p)
	return verifyResult(stdout, o.output, tok, err)
}

// loadKeys makes a key set and fetches its keys.
func loadKeys(ctx context.Context, cfg keyset.Config) (*keyset.Set, error) {
	cfg.Logger = quietLogger()
	set, err := keyset.New(cfg)
	if err != nil {
		return nil, usageErrorf("verify: %v", err)
	}
	if _, err := set.Keys(ctx); err != nil {
		set.Close()
		return nil, usageErrorf("verify: %v", err)
	}
	return set, nil
}

// verifyResult prints the outcome and returns the error that gives the
// exit status: nil (0), invalid (1), or a key-source problem (2).
func verifyResult(w io.Writer, format string, tok *token.Token, err error) error {
	var te *token.Error
	if err != nil && (!errors.As(err, &te) || te.Err != nil) {
		return usageErrorf("verify: %v", err)
	}
	switch {
	case err != nil && format == "json":
		err = writeJSON(w, "", struct {
			Valid  bool       `json:"valid"`
			Code   token.Code `json:"code"`
			Detail string     `json:"detail"`
		}{false, te.Code, te.Detail})
		if err == nil {
			err = &exitError{code: 1}
		}
		return err
	case err != nil:
		fmt.Fprintf(w, "invalid: %s: %s\n", te.Code, te.Detail)
		return &exitError{code: 1}
	case format == "json":
		return writeJSON(w, "", struct {
			Valid  bool           `json:"valid"`
			Header map[string]any `json:"header"`
			Claims map[string]any `json:"claims"`
		}{true, tok.Header, tok.Claims})
	}
	fmt.Fprint(w, "valid\nheader: ")
	if err := writeJSON(w, "  ", tok.Header); err != nil {
		return err
	}
	fmt.Fprint(w, "claims: ")
	return writeJSON(w, "  ", tok.Claims)
}

// writeJSON writes v as one JSON value and a newline, indented when
// indent is not empty, with <, > and & as they are.
func writeJSON(w io.Writer, indent string, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", indent)
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	return nil
}
