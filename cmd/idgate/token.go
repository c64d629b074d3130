package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/idgate/idgate/devidp"
)

func newTokenCmd() *cobra.Command {
	var (
		idp    string
		output string
		o      devidp.TokenOptions
	)
	cmd := &cobra.Command{
		Use:   "token (--user NAME | --app NAME) [flags]",
		Short: "Get a token from a running dev identity provider",
		Long: `Get an access token from a running dev identity provider (idgate dev or
idgate idp) and print it, so that TOKEN=$(idgate token --user alice) works.

--user gets a delegated token with Entra's password grant (the client is
--app, default the first client with delegated permissions on the API);
--app alone gets an app-only token with client_credentials. --version,
--groups, --roles, --audience and --expired ask the dev-only mint endpoint
(/_dev/token) instead, which real Entra ID does not have.

Exit status 2: bad flags, or the provider refused or could not be reached.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.User == "" && o.App == "" {
				return usageErrorf("token: name a user (--user alice) or an app (--app orders-client)")
			}
			if o.Version != 0 && o.Version != 1 && o.Version != 2 {
				return usageErrorf("token: --version: %d is not 1 or 2", o.Version)
			}
			if output != "raw" && output != "json" {
				return usageErrorf("token: -o: %q is not raw or json", output)
			}
			f := cmd.Flags()
			if !f.Changed("groups") {
				o.Groups = nil
			} else if o.Groups == nil {
				o.Groups = []string{}
			}
			if !f.Changed("roles") {
				o.Roles = nil
			} else if o.Roles == nil {
				o.Roles = []string{}
			}
			resp, body, err := (&devidp.Client{BaseURL: idp}).Token(cmd.Context(), o)
			if err != nil {
				return usageErrorf("token: %v", err)
			}
			if output == "json" {
				cmd.OutOrStdout().Write(body)
				return nil
			}
			fmt.Fprintln(cmd.OutOrStdout(), resp.AccessToken)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&idp, "idp", "http://"+devidp.DefaultAddr, "URL of the dev identity provider")
	f.StringVarP(&output, "output", "o", "raw", "raw (the access token) or json (the whole token response)")
	f.StringVar(&o.User, "user", "", "user the token is for (name, UPN or object ID)")
	f.StringVar(&o.App, "app", "", "calling client app (name or client ID); alone: an app-only token")
	f.StringVar(&o.Tenant, "tenant", "", "tenant ID or domain (default the directory's first)")
	f.StringVar(&o.API, "api", "", "API the token is for (name, client ID or App ID URI; default the tenant's first API)")
	f.StringSliceVar(&o.Scopes, "scope", nil, "delegated scope of the API, repeatable (default what /.default grants)")
	f.IntVar(&o.Version, "version", 0, "token version 1 or 2 (default the API's accessTokenAcceptedVersion)")
	f.StringSliceVar(&o.Groups, "groups", nil, "groups claim instead of the user's groups (names or object IDs)")
	f.StringSliceVar(&o.Roles, "roles", nil, "roles claim instead of the directory's role assignments")
	f.StringVar(&o.Audience, "audience", "", "aud of a v1 token (default the API's App ID URI)")
	f.BoolVar(&o.Expired, "expired", false, "a token that expired an hour ago")
	f.StringVar(&o.Password, "password", "", "the user's password (default "+devidp.DefaultPassword+")")
	f.StringVar(&o.Secret, "secret", "", "the client's secret (default "+devidp.DefaultPassword+")")
	f.BoolVar(&o.PublicClient, "public-client", false, "send no client secret (a public client)")
	return cmd
}
