package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/cobra"

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
nothing. A running daemon sees the new generation and announces it.`,
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
			level := new(slog.LevelVar)
			level.Set(daemon.ParseLevel(cfg.LogLevel))
			log := logging.New(os.Stderr, cfg.LogFormat, level)
			mgr := rotate.NewManager(&event.Bus{}, rotate.NewMetrics(), log)
			res, err := mgr.RenewOnce(cmd.Context(), *plan, force, dryRun)
			if err != nil {
				return fmt.Errorf("renewing %s: %w", plan.Name, err)
			}
			printRenewResult(cmd.OutOrStdout(), res)
			return nil
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "renew even if the certificate is not due")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "issue and validate, but install nothing")
	return cmd
}

func printRenewResult(w io.Writer, res rotate.Result) {
	switch {
	case res.Skipped != "":
		fmt.Fprintf(w, "%s: %s\n", res.Name, res.Skipped)
	case res.DryRun:
		fmt.Fprintf(w, "%s: dry run: a valid candidate was issued (serial %s, expires %s); nothing installed\n", res.Name, res.Serial, res.NotAfter.Format(time.RFC3339))
	default:
		fmt.Fprintf(w, "%s: renewed: serial %s, expires %s, generation %d\n", res.Name, res.Serial, res.NotAfter.Format(time.RFC3339), res.Generation)
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
