package main

import (
	"errors"

	"github.com/spf13/cobra"
)

func newVerifyCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "verify [flags] TOKEN|-",
		Short: "Check one token the way the gateway would and say why it is or is not accepted",
		RunE: func(cmd *cobra.Command, args []string) error {
			return &exitError{code: 2, err: errors.New("verify: not built yet")}
		},
	}
}
