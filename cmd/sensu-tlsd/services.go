package main

import (
	"fmt"
	"log/slog"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sensu-tlsd/sensu-tlsd/config"
	"github.com/sensu-tlsd/sensu-tlsd/internal/event"
	"github.com/sensu-tlsd/sensu-tlsd/internal/pki"
	"github.com/sensu-tlsd/sensu-tlsd/systemd"
)

func newServicesCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "services",
		Short: "List the services that act on certificate changes, and probe them",
	}
	cmd.AddCommand(newServicesListCmd(a), newServicesCheckCmd(a), newServicesActCmd(a))
	return cmd
}

func newServicesListCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "Show each service's action, the certificates that trigger it and its health checks",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, d, err := loadDispatcher(a, nil)
			if err != nil {
				return err
			}
			defer d.Close()
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "SERVICE\tACTION\tCERTIFICATES\tHEALTH")
			for _, s := range d.Services() {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", s.Name, s.Action, orDash(strings.Join(s.Certificates, ",")), orDash(strings.Join(s.Checks, ", ")))
			}
			return w.Flush()
		},
	}
}

func newServicesCheckCmd(a *app) *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "check [SERVICE...]",
		Short: "Probe services now: healthy and serving the certificates installed on disk (exit 2 if not)",
		Long: `Runs each service's health checks without acting on it. For the sensu-backend
preset this is GET /health plus a TLS handshake to the API and agent ports that
must present the serial of backend.yml's cert-file as installed on disk: a
backend that missed a restart fails with the serial it still serves.
Exit status 0 when every service passes, 2 otherwise (Sensu check semantics).`,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, d, err := loadDispatcher(a, nil)
			if err != nil {
				return err
			}
			defer d.Close()
			if len(args) == 0 {
				for _, s := range d.Services() {
					args = append(args, s.Name)
				}
			}
			failed := 0
			for _, name := range args {
				checks, err := d.Probe(cmd.Context(), name, installedBatch(cfg, name), timeout)
				if err != nil {
					failed++
					fmt.Fprintf(cmd.OutOrStdout(), "CRITICAL %s: %v\n", name, err)
					continue
				}
				fmt.Fprintf(cmd.OutOrStdout(), "OK %s: %s\n", name, orDash(strings.Join(checks, ", ")))
			}
			if failed > 0 {
				return exitError{code: 2}
			}
			return nil
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Second, "how long each service may take to pass")
	return cmd
}

func newServicesActCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "act SERVICE...",
		Short: "Run services' actions now (as a rotation would) and wait for their health checks",
		Long: `For files replaced by hand: runs each named service's action with its preset's
rules (a sensu-backend whose backend.yml names none of its certificates' files
still restarts; one whose files are all etcd files does not), then waits for
the health checks against the serials installed on disk. A service the daemon
is acting on is waited for, never acted on twice at once (lock files in
STATE-DIR/services). Exit 2 when a service fails its action or does not come
back healthy.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, d, err := loadDispatcher(a, slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil)))
			if err != nil {
				return err
			}
			defer d.Close()
			failed := 0
			for _, name := range args {
				if err := d.Act(cmd.Context(), name, installedBatch(cfg, name)); err != nil {
					failed++
					fmt.Fprintf(cmd.OutOrStdout(), "CRITICAL %s: %v\n", name, err)
					continue
				}
				fmt.Fprintf(cmd.OutOrStdout(), "OK %s\n", name)
			}
			if failed > 0 {
				return exitError{code: 2}
			}
			return nil
		},
	}
}

// loadDispatcher builds the same dispatcher the daemon runs, with health
// timeouts left as configured.
func loadDispatcher(a *app, log *slog.Logger) (*config.Config, *systemd.Dispatcher, error) {
	cfg, err := a.loadConfig()
	if err != nil {
		return nil, nil, err
	}
	d, err := systemd.FromConfig(cfg, log, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", orDefault(cfg.File, config.DefaultFile), err)
	}
	return cfg, d, nil
}

// installedBatch describes the certificates that name service as they are
// on disk now; unreadable files contribute no serial.
func installedBatch(cfg *config.Config, service string) systemd.Batch {
	var b systemd.Batch
	for _, c := range cfg.Certificates {
		for _, s := range c.Services {
			if s != service {
				continue
			}
			ch := event.Change{Name: c.Name, CertFile: c.CertFile, KeyFile: c.KeyFile, CAFile: c.CAFile,
				Files: []string{c.CertFile, c.KeyFile, c.CAFile}}
			if certs, err := pki.ReadCertificates(c.CertFile); err == nil && len(certs) > 0 {
				ch.NewSerial = pki.SerialHex(certs[0])
			}
			b = append(b, ch)
		}
	}
	return b
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
