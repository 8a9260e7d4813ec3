package main

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/sensu-tlsd/sensu-tlsd/config"
	"github.com/sensu-tlsd/sensu-tlsd/config/sensu"
	"github.com/sensu-tlsd/sensu-tlsd/rotate"
	"github.com/sensu-tlsd/sensu-tlsd/rotate/daemon"
	"github.com/sensu-tlsd/sensu-tlsd/systemd"
)

func newRunCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "run",
		Short: "Run the daemon: watch, renew, validate and install every managed certificate",
		Long: `Run keeps every certificate in the config valid: it issues missing ones,
renews each when a third of its lifetime is left (renewal.before), follows
files other tools replace, and announces every change. SIGHUP re-reads the
config (a broken one is rejected and the running one stays); SIGTERM and
SIGINT stop it gracefully. Metrics are served on metrics-address.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := a.loadConfig()
			if err != nil {
				return err
			}
			level := new(slog.LevelVar)
			level.Set(daemon.ParseLevel(cfg.LogLevel))
			log := daemon.NewLogger(os.Stderr, cfg.LogFormat, level)
			d := &daemon.Daemon{
				Bus:      &rotate.Bus{},
				Metrics:  rotate.NewMetrics(),
				Log:      log,
				LogLevel: level,
				Notifier: systemd.Notifier{Log: log},
				Load:     func() (*config.Config, error) { return a.loadConfig() },
			}
			// Consumers subscribe to d.Bus before Run. The Sensu config
			// writer goes in front of the service actions: it passes each
			// change on with the Sensu files it rewrote, so a restart sees
			// both the new certificate and the new backend.yml.
			services, err := systemd.FromConfig(cfg, log, d.Metrics.Registry)
			if err != nil {
				return fmt.Errorf("%s: %w", orDefault(cfg.File, config.DefaultFile), err)
			}
			defer services.Close()
			var consumer rotate.Subscriber = services
			if regen := sensu.NewRegenerator(cfg, services); regen != nil {
				consumer = regen
			}
			d.Bus.Subscribe(consumer)
			return d.Run(cmd.Context(), cfg)
		},
	}
}
