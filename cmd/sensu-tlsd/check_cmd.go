package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/sensu-tlsd/sensu-tlsd/config"
	"github.com/sensu-tlsd/sensu-tlsd/rotate"
	"github.com/sensu-tlsd/sensu-tlsd/rotate/inventory"
)

func newCheckCmd(a *app) *cobra.Command {
	var (
		src        sourceFlags
		warn, crit string
	)
	cmd := &cobra.Command{
		Use:   "check [CERT-FILE...] [--warn 30d] [--crit 7d]",
		Short: "Run as a Sensu check: one status line, exit 0/1/2/3, expiry metrics",
		Long: `A Sensu check plugin. Prints one status line, then each certificate's seconds
to expiry in the Prometheus text format (set output_metric_format:
prometheus_text on the check to store them). Exit status: 0 OK, 1 WARNING
(a certificate expires within --warn, or the daemon's renewals of it keep
failing), 2 CRITICAL (within --crit, expired, or
failing a check such as a key that does not match), 3 UNKNOWN (a certificate
cannot be read).`,
		RunE: func(cmd *cobra.Command, args []string) error {
			w, err := config.ParseDuration(warn)
			if err != nil {
				return exitError{inventory.StatusUnknown, "UNKNOWN: --warn: " + err.Error()}
			}
			c, err := config.ParseDuration(crit)
			if err != nil {
				return exitError{inventory.StatusUnknown, "UNKNOWN: --crit: " + err.Error()}
			}
			cfg, err := a.loadConfig()
			if err != nil {
				return exitError{inventory.StatusUnknown, "UNKNOWN: " + err.Error()}
			}
			sources, err := src.gather(cfg, args)
			if err != nil {
				return exitError{inventory.StatusUnknown, "UNKNOWN: " + err.Error()}
			}
			entries := inventory.Inspect(sources, time.Now())
			states, err := rotate.ReadState(cfg.StateDir)
			if err != nil {
				return exitError{inventory.StatusUnknown, "UNKNOWN: " + err.Error()}
			}
			inventory.AttachState(entries, states)
			res := inventory.Evaluate(entries, w, c)
			out := cmd.OutOrStdout()
			fmt.Fprintln(out, res.Line)
			if err := inventory.WriteMetrics(out, entries); err != nil {
				return exitError{inventory.StatusUnknown, err.Error()}
			}
			if res.Status != inventory.StatusOK {
				return exitError{code: res.Status}
			}
			return nil
		},
	}
	src.bind(cmd)
	cmd.Flags().StringVar(&warn, "warn", "30d", "warn when a certificate expires within this time")
	cmd.Flags().StringVar(&crit, "crit", "7d", "critical when a certificate expires within this time")
	return cmd
}
