package main

import (
	"fmt"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=..."; when
// it is not, versionString reads what the Go toolchain recorded.
var version string

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
		newLintCmd(a),
		newMigrateCmd(a),
		newServicesCmd(a),
		newRunCmd(a),
		newRenewCmd(a),
		newProxyCmd(),
		newAgentsCmd(a),
	)
	return root
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the sensu-tlsd version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintf(cmd.OutOrStdout(), "sensu-tlsd %s\n", versionString(version, debug.ReadBuildInfo))
		},
	}
}

// versionString is the version set at link time, else the module version
// and VCS revision the toolchain stamped (go install module@version, or a
// build in a git checkout), so a bug report says which code ran.
func versionString(linked string, buildInfo func() (*debug.BuildInfo, bool)) string {
	if linked != "" {
		return linked
	}
	info, ok := buildInfo()
	if !ok {
		return "unknown (built without module information)"
	}
	v := info.Main.Version
	if v == "" || v == "(devel)" {
		v = "devel"
	}
	var rev, modified string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	if rev != "" {
		v += " (commit " + rev
		if modified == "true" {
			v += ", modified"
		}
		v += ")"
	}
	return v
}
