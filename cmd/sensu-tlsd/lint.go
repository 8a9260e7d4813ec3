package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/spf13/cobra"

	"github.com/sensu-tlsd/sensu-tlsd/config/migrate"
	"github.com/sensu-tlsd/sensu-tlsd/config/sensu"
)

// Exit codes of lint follow the monitoring-plugin convention, so the same
// command works in CI and as a Sensu check.
const (
	lintExitClean    = 0
	lintExitWarnings = 1
	lintExitErrors   = 2
	lintExitUnusable = 3
)

func newLintCmd(a *app) *cobra.Command {
	var opt sensu.LintOptions
	var role string
	cmd := &cobra.Command{
		Use:   "lint FILE...",
		Short: "Report what Sensu would silently get wrong in backend.yml, agent.yml and their env files",
		Long: `Lint Sensu's backend.yml and agent.yml (which is which is told by their keys,
then by their names; --role forces it): unknown keys with the likely intended
key, keys set twice (Sensu uses the last), half cert/key pairs, https/wss URLs
without certificates, CA and key files missing or unreadable by the Sensu user,
certificates whose SANs miss the hosts in the URLs that reach them, etcd
certificates without clientAuth, mixed ws/wss backend-url lists, URL lists
joined with commas, booleans Sensu reads otherwise than they look (YAML 1.1:
a plain yes is true, a quoted "yes" is false) and insecure-skip-tls-verify
on. Given one backend.yml and one agent.yml of the same machine, it also
checks that the backend certificate covers the hosts the agent reaches this
backend by.

Environment files (/etc/default/sensu-agent, /etc/sysconfig/sensu-backend: no
.yml name, KEY=value lines) are linted variable by variable: unknown
SENSU_* names, booleans, lists (space-separated), ws/wss mixes and files.

When the --user account does not exist, file readability is not checked and a
warning says so.

On a node where migrate's phase 4 bound the agent to its certificate on the
open-source build (STATE-DIR/listeners.d/migrate-enforce.yml exists),
agent.yml's ws://` + migrate.AgentUplink + ` is sensu-tlsd's agent uplink, which
carries the connection on over TLS: it is reported as info, not as plaintext.

Each finding is printed as FILE:LINE: SEVERITY: KEY: WHAT (fix: FIX).

Exit status: 0 clean, 1 warnings only, 2 at least one error,
3 a file could not be read or the arguments are wrong.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return exitError{lintExitUnusable, "lint: name at least one file (backend.yml, agent.yml)"}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			switch sensu.Role(role) {
			case "", sensu.Backend, sensu.Agent:
				opt.Role = sensu.Role(role)
			default:
				return exitError{lintExitUnusable, fmt.Sprintf("lint: --role %q: use backend or agent", role)}
			}
			if cmd.Flags().Changed("user") && !sensu.AccountExists(opt.User) {
				return exitError{lintExitUnusable, fmt.Sprintf("lint: --user %q: no such account", opt.User)}
			}
			uplink, err := agentUplink(a)
			if err != nil {
				return exitError{lintExitUnusable, "lint: " + err.Error()}
			}
			opt.Uplink = uplink
			all, err := sensu.LintFiles(args, opt)
			if err != nil {
				return exitError{lintExitUnusable, "lint: " + err.Error()}
			}
			out := cmd.OutOrStdout()
			for _, f := range all {
				fmt.Fprintln(out, f)
			}
			switch sensu.Worst(all) {
			case sensu.Error:
				return exitError{lintExitErrors, fmt.Sprintf("lint: %d finding(s), errors among them", len(all))}
			case sensu.Warning:
				return exitError{lintExitWarnings, fmt.Sprintf("lint: %d warning(s)", len(all))}
			}
			fmt.Fprintf(out, "%d file(s) clean\n", len(args))
			return nil
		},
	}
	cmd.Flags().StringVar(&opt.User, "user", "sensu", "account the Sensu processes run as, for the file readability check (a warning when it does not exist)")
	cmd.Flags().StringVar(&role, "role", "", "force the role of every FILE: backend or agent")
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return exitError{lintExitUnusable, "lint: " + err.Error()}
	})
	return cmd
}

// agentUplink is the address of this node's sensu-tlsd agent uplink when
// migrate's phase 4 put one in place (its listeners' drop-in exists), ""
// otherwise.
func agentUplink(a *app) (string, error) {
	cfg, err := a.loadConfig()
	if err != nil {
		return "", fmt.Errorf("reading sensu-tlsd's config for its agent uplink: %w", err)
	}
	switch _, err := os.Stat(migrate.EnforceDropInPath(cfg.StateDir)); {
	case err == nil:
		return migrate.AgentUplink, nil
	case errors.Is(err, fs.ErrNotExist):
		return "", nil
	default:
		return "", err
	}
}
