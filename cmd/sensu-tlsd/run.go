package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/sensu-tlsd/sensu-tlsd/config"
	"github.com/sensu-tlsd/sensu-tlsd/config/migrate"
	"github.com/sensu-tlsd/sensu-tlsd/internal/agentcutover"
	"github.com/sensu-tlsd/sensu-tlsd/internal/daemon"
	"github.com/sensu-tlsd/sensu-tlsd/internal/enrol"
	"github.com/sensu-tlsd/sensu-tlsd/internal/event"
	"github.com/sensu-tlsd/sensu-tlsd/internal/logging"
	"github.com/sensu-tlsd/sensu-tlsd/internal/regenerate"
	"github.com/sensu-tlsd/sensu-tlsd/internal/reload"
	"github.com/sensu-tlsd/sensu-tlsd/internal/sensuevent"
	"github.com/sensu-tlsd/sensu-tlsd/proxy"
	"github.com/sensu-tlsd/sensu-tlsd/rotate"
	"github.com/sensu-tlsd/sensu-tlsd/systemd"
)

func newRunCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "run",
		Short: "Run the daemon: watch, renew, validate and install every managed certificate",
		Long: `Run keeps every certificate in the config valid: it issues missing ones,
renews each when a third of its lifetime is left (renewal.before), follows
files other tools replace, and announces every change to the Sensu config
writer, the service actions and the proxy listeners (listeners: in the
config and the cutover's drop-ins in STATE-DIR/listeners.d). SIGHUP re-reads
the config (a broken one is rejected and the running one stays); SIGTERM and
SIGINT stop it gracefully. Metrics are served on metrics-address, with
/healthz and /agents (Sensu agents seen by the proxy, by transport).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			load := a.loadRunConfig
			cfg, err := load()
			if err != nil {
				return err
			}
			level := new(slog.LevelVar)
			level.Set(daemon.ParseLevel(cfg.LogLevel))
			log := logging.New(os.Stderr, cfg.LogFormat, level)
			d := &daemon.Daemon{
				Bus:      &event.Bus{},
				Metrics:  rotate.NewMetrics(),
				Log:      log,
				LogLevel: level,
				Notifier: systemd.Notifier{Log: log},
				Load:     load,
			}
			// Consumers subscribe to d.Bus before Run, in the order a change
			// must reach them: proxy listeners first (new handshakes get the
			// new certificate at once), then the Sensu config writer, which
			// passes each change on to the service actions with the Sensu
			// files it rewrote, so a restart sees both.
			listeners, err := proxy.NewListeners(d.Metrics.Registry, log)
			if err != nil {
				return err
			}
			start, err := listeners.Prepare(cfg)
			if err != nil {
				return err
			}
			if err := start.Commit(cmd.Context()); err != nil {
				return err
			}
			d.Bus.Subscribe(listeners)
			d.Reloaders = append(d.Reloaders, listeners)
			d.Services = append(d.Services, func(ctx context.Context) error {
				<-ctx.Done()
				drain, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				return listeners.Shutdown(drain)
			})
			d.Handlers = map[string]http.Handler{"/agents": agentsHandler(listeners)}
			// On a backend, the bridge's plaintext agents go to the
			// cluster's records while backend.yml names a cluster, for the
			// migrate gates of every member; a reload may name another node.
			publisher := &migrate.Publisher{Agents: func() []migrate.Sighting { return sightings(listeners) }, Log: log}
			if err := startReloader(cmd.Context(), publisher, cfg); err != nil {
				return err
			}
			d.Reloaders = append(d.Reloaders, publisher)
			d.Services = append(d.Services, publisher.Run)

			// The daemon's own Sensu events follow the state files; posting
			// runs beside the manager and never holds up a renewal.
			poster, err := sensuevent.NewPoster(d.Metrics.Registry, log)
			if err != nil {
				return err
			}
			reporter, err := sensuevent.NewReporter(poster, log)
			if err != nil {
				return err
			}
			if err := startReloader(cmd.Context(), reporter, cfg); err != nil {
				return err
			}
			d.Reloaders = append(d.Reloaders, reporter)
			d.Services = append(d.Services, poster.Run, reporter.Run)
			// The enrol-server binds enrol-server.listen (a busy port fails
			// the start) and follows reloads, off while it is empty.
			enrolServer := enrol.NewService(log)
			if err := startReloader(cmd.Context(), enrolServer, cfg); err != nil {
				return err
			}
			d.Reloaders = append(d.Reloaders, enrolServer)
			d.Services = append(d.Services, enrolServer.Run)
			// On an agent node, the follower switches sensu-agent to wss://
			// once every backend serves verified TLS.
			follower := agentcutover.New(log, agentcutover.ServiceRestarter(log, d.Metrics.Registry))
			if err := startReloader(cmd.Context(), follower, cfg); err != nil {
				return err
			}
			d.Reloaders = append(d.Reloaders, follower)
			d.Services = append(d.Services, follower.Run)

			consumers, err := rotate.NewRebuilt(cfg, buildConsumers(log, d.Metrics.Registry))
			if err != nil {
				return err
			}
			defer consumers.Close()
			d.Bus.Subscribe(consumers)
			d.Reloaders = append(d.Reloaders, consumers)
			return d.Run(cmd.Context(), cfg)
		},
	}
}

// startReloader puts cfg in effect in r, as a reload would.
func startReloader(ctx context.Context, r reload.Reloader, cfg *config.Config) error {
	p, err := r.Prepare(cfg)
	if err != nil {
		return err
	}
	return p.Commit(ctx)
}

// loadRunConfig is the configuration run starts from and re-reads on
// SIGHUP: file, env and flags, plus the cutover's listener drop-ins.
func (a *app) loadRunConfig() (*config.Config, error) {
	cfg, err := a.loadConfig()
	if err != nil {
		return nil, err
	}
	if err := migrate.AddDropIns(cfg); err != nil {
		return nil, fmt.Errorf("cutover listener drop-ins: %w", err)
	}
	return cfg, nil
}

// buildConsumers makes what run subscribes after the proxy listeners: the
// service actions, behind the Sensu config writer when that manages
// Sensu's files.
func buildConsumers(log *slog.Logger, reg *prometheus.Registry) rotate.BuildFunc {
	return func(cfg *config.Config) (event.Subscriber, func(), error) {
		services, err := systemd.FromConfig(cfg, log, reg)
		if err != nil {
			return nil, nil, inFile(cfg, err)
		}
		if regen := regenerate.New(cfg, services); regen != nil {
			return regen, services.Close, nil
		}
		return services, services.Close, nil
	}
}

// checkStartable runs every check run makes on cfg before it starts
// anything (plans, service actions, proxy listeners), with the same
// constructors but binding no port and writing no file, and reports every
// failure rather than the first.
func checkStartable(cfg *config.Config) error {
	var errs []error
	if _, err := rotate.Plans(cfg); err != nil {
		errs = append(errs, err)
	}
	log := slog.New(slog.DiscardHandler)
	reg := prometheus.NewRegistry()
	if _, release, err := buildConsumers(log, reg)(cfg); err != nil {
		errs = append(errs, err)
	} else {
		release()
	}
	if cfg.EnrolServer.Listen != "" {
		if _, _, err := enrol.NewServer(cfg, nil, log); err != nil {
			errs = append(errs, inFile(cfg, err))
		}
	}
	listeners, err := proxy.NewListeners(reg, log)
	var built reload.Pending
	if err == nil {
		built, err = listeners.Prepare(cfg) // names the file itself, as on a reload
	}
	if err != nil {
		errs = append(errs, err)
	} else {
		built.Abort()
	}
	return errors.Join(errs...)
}

// inFile names cfg's file on each error err joins, one per line.
func inFile(cfg *config.Config, err error) error {
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = slices.Clone(j.Unwrap())
	}
	for i, e := range errs {
		errs[i] = fmt.Errorf("%s: %w", orDefault(cfg.File, config.DefaultFile), e)
	}
	return errors.Join(errs...)
}

// sightings are the agents the proxy listeners have seen, as migrate
// counts them.
func sightings(l *proxy.Listeners) []migrate.Sighting {
	var out []migrate.Sighting
	for _, a := range l.Agents() {
		out = append(out, migrate.Sighting{Namespace: a.Namespace, Name: a.Name, Transport: string(a.Transport), LastSeen: a.LastSeen})
	}
	return out
}

// agentsHandler serves the agents the proxy listeners have seen, by
// transport, for `sensu-tlsd status`.
func agentsHandler(l *proxy.Listeners) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		body, err := proxy.AgentsJSON(l.Agents())
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	})
}
