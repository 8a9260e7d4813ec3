package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sensu-tlsd/sensu-tlsd/config"
	"github.com/sensu-tlsd/sensu-tlsd/internal/daemon"
	"github.com/sensu-tlsd/sensu-tlsd/internal/event"
	"github.com/sensu-tlsd/sensu-tlsd/internal/logging"
	"github.com/sensu-tlsd/sensu-tlsd/rotate"
)

func newRenewCmd(a *app) *cobra.Command {
	var force, dryRun bool
	cmd := &cobra.Command{
		Use:   "renew NAME",
		Short: "Renew one managed certificate now (when due, or with --force)",
		Long: `Renew issues, validates and installs a new set for certificate NAME, the
same way the daemon does. Without --force it does nothing while the
certificate is not yet due. --dry-run issues and validates but installs
nothing. This command restarts nothing and tells no process: a running
daemon sees the new generation and announces it to its consumers (proxy
listeners at once, the certificate's services after
service-actions.coalesce).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := a.loadConfig()
			if err != nil {
				return err
			}
			plans, err := rotate.Plans(cfg)
			if err != nil {
				return err
			}
			var plan *rotate.Plan
			for i := range plans {
				if plans[i].Name == args[0] {
					plan = &plans[i]
				}
			}
			if plan == nil {
				return fmt.Errorf("no certificate named %q in %s (known: %s)", args[0], cfg.File, names(plans))
			}
			// Warnings and errors only: this process has no consumers, so
			// the manager's "consumers took the certificate" would claim
			// what only the daemon does; the result below says it instead.
			level := new(slog.LevelVar)
			level.Set(max(daemon.ParseLevel(cfg.LogLevel), slog.LevelWarn))
			log := logging.New(os.Stderr, cfg.LogFormat, level)
			mgr := rotate.NewManager(&event.Bus{}, rotate.NewMetrics(), log)
			res, err := mgr.RenewOnce(cmd.Context(), *plan, rotate.RenewOptions{Force: force, DryRun: dryRun})
			if err != nil {
				return fmt.Errorf("renewing %s: %w", plan.Name, err)
			}
			printRenewResult(cmd.OutOrStdout(), res, *plan, cfg)
			return nil
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "renew even if the certificate is not due")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "issue and validate, but install nothing")
	return cmd
}

// printRenewResult says what renew did, and for an installed set what it
// left to the daemon: this process announces nothing to anyone.
func printRenewResult(w io.Writer, res rotate.Result, plan rotate.Plan, cfg *config.Config) {
	switch {
	case res.Skipped != "":
		fmt.Fprintf(w, "%s: %s\n", res.Name, res.Skipped)
	case res.DryRun:
		fmt.Fprintf(w, "%s: dry run: a valid candidate was issued (serial %s, expires %s); nothing installed\n", res.Name, res.Serial, res.NotAfter.Format(time.RFC3339))
	default:
		fmt.Fprintf(w, "%s: renewed: serial %s, expires %s, generation %d, installed at %s, %s and %s\n",
			res.Name, res.Serial, res.NotAfter.Format(time.RFC3339), res.Generation, plan.Paths.Cert, plan.Paths.Key, plan.Paths.CA)
		services := "the services it lists (none)"
		if c, ok := cfg.Certificate(res.Name); ok && len(c.Services) > 0 {
			services = "the services it lists (" + strings.Join(c.Services, ", ") + ")"
		}
		fmt.Fprintf(w, "Not done by this command: no process was told and nothing was restarted. A running sensu-tlsd\n"+
			"daemon sees the new files and announces them: its proxy listeners serve them at once and\n"+
			"%s act, as their presets decide, after service-actions.coalesce (%s); its log says\n"+
			"\"consumers took the certificate\" when they have. Without a running daemon, restart what uses\n"+
			"these files yourself.\n",
			services, cfg.ServiceActions.Coalesce)
	}
}

func names(plans []rotate.Plan) string {
	s := ""
	for i, p := range plans {
		if i > 0 {
			s += ", "
		}
		s += p.Name
	}
	if s == "" {
		return "none"
	}
	return s
}
