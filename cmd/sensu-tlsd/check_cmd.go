package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/sensu-tlsd/sensu-tlsd/config"
	"github.com/sensu-tlsd/sensu-tlsd/internal/certstate"
	"github.com/sensu-tlsd/sensu-tlsd/internal/inventory"
)

func newCheckCmd(a *app) *cobra.Command {
	var (
		src        sourceFlags
		warn, crit string
	)
	cmd := &cobra.Command{
		Use:   "check [CERT-FILE...] [--profile P --hosts h1,h2] [--warn 30d] [--crit 7d]",
		Short: "Run as a Sensu check: one status line, exit 0/1/2/3, expiry metrics",
		Long: `A Sensu check plugin. Its output is Prometheus text (set output_metric_format:
prometheus_text on the check): the status line as a comment ("# OK: ..."),
then each certificate's seconds to expiry as
sensu_tlsd_certificate_expiry_seconds{name="...",path="..."}. Exit status:
0 OK, 1 WARNING (a certificate expires within --warn, the daemon's renewals
of it keep failing, or a check warns, such as an empty SAN), 2 CRITICAL
(within --crit, expired, failing a check such as a key that does not
match, or a file that is there but holds no usable certificate or key),
3 UNKNOWN (a certificate, key or CA file is missing or may not be read, or
the flags or config are wrong). --warn must be at least --crit. Certificate
files given as arguments are checked for usages and SANs with --profile (and
--hosts); without it their usages and SANs follow the status line as a
"# ?" comment, for a person to judge.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			w, err := config.ParseDuration(warn)
			if err != nil {
				return exitError{inventory.StatusUnknown, "UNKNOWN: --warn: " + err.Error()}
			}
			c, err := config.ParseDuration(crit)
			if err != nil {
				return exitError{inventory.StatusUnknown, "UNKNOWN: --crit: " + err.Error()}
			}
			if w < c {
				return exitError{inventory.StatusUnknown, fmt.Sprintf("UNKNOWN: --warn %s is shorter than --crit %s: a certificate would turn critical before any warning; give --warn at least --crit (default --warn 30d --crit 7d)", warn, crit)}
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
			states, err := certstate.ReadAll(cfg.StateDir)
			if err != nil {
				return exitError{inventory.StatusUnknown, "UNKNOWN: " + err.Error()}
			}
			inventory.AttachState(entries, states)
			res := inventory.Evaluate(entries, w, c)
			if err := inventory.WriteCheck(cmd.OutOrStdout(), res, entries); err != nil {
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
