package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func newRootCmd() *cobra.Command {
	a := &app{}
	root := &cobra.Command{
		Use:           "sensu-tlsd",
		Short:         "Keep Sensu Go's TLS certificates valid and its configs pointing at them",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	a.bindGlobalFlags(root)
	root.AddCommand(
		newVersionCmd(),
		newConfigCmd(a),
		newCACmd(a),
		newIssueCmd(a),
		newStatusCmd(a),
		newCheckCmd(a),
		newLintCmd(),
		newMigrateCmd(a),
		newServicesCmd(a),
		newRunCmd(a),
		newRenewCmd(a),
		newProxyCmd(),
	)
	return root
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the sensu-tlsd version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintf(cmd.OutOrStdout(), "sensu-tlsd %s\n", version)
		},
	}
}
