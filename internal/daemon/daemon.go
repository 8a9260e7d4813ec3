package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/sensu-tlsd/sensu-tlsd/config"
	"github.com/sensu-tlsd/sensu-tlsd/internal/event"
	"github.com/sensu-tlsd/sensu-tlsd/internal/reload"
	"github.com/sensu-tlsd/sensu-tlsd/rotate"
)

// Notifier reports lifecycle states to the service manager (systemd).
type Notifier interface {
	Ready()
	Reloading()
	Stopping()
	// Watchdog pings the service manager until ctx ends, each time only
	// after alive has returned, so a stuck alive stops the pings.
	Watchdog(ctx context.Context, alive func()) error
}

// Daemon wires the long-running parts together. Consumers subscribe to Bus
// and may register series on Metrics.Registry before Run.
type Daemon struct {
	Bus      *event.Bus
	Metrics  *rotate.Metrics
	Log      *slog.Logger
	LogLevel *slog.LevelVar // updated on reload
	Notifier Notifier
	// Load re-reads the configuration on SIGHUP.
	Load func() (*config.Config, error)
	// Services run beside the manager (proxy listeners); one failing stops
	// the daemon.
	Services []func(ctx context.Context) error
	// Reloaders follow SIGHUP reloads (proxy listeners, the consumers run
	// rebuilds from the config). Each prepares a new configuration before
	// anything changes; one that cannot take it gets the whole
	// configuration rejected.
	Reloaders []reload.Reloader
	// Handlers are extra endpoints on the metrics address, such as /agents.
	Handlers map[string]http.Handler
}

// Run runs until ctx ends or SIGTERM/SIGINT arrives, with cfg as the
// initial configuration.
func (d *Daemon) Run(ctx context.Context, cfg *config.Config) error {
	plans, err := rotate.Plans(cfg)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	// Bind the metrics port before anything else starts, so a busy port
	// fails the start cleanly.
	var ln net.Listener
	if cfg.MetricsAddress != "" {
		if ln, err = net.Listen("tcp", cfg.MetricsAddress); err != nil {
			return fmt.Errorf("metrics-address %s: %w (pick another loopback port, or \"\" to turn metrics off)", cfg.MetricsAddress, err)
		}
	}
	mgr := rotate.NewManager(d.Bus, d.Metrics, d.Log)
	g, ctx := errgroup.WithContext(ctx)
	ready := make(chan struct{})
	g.Go(func() error {
		return mgr.Run(ctx, plans, func() { close(ready) })
	})
	metricsAddr := "off"
	if ln != nil {
		metricsAddr = ln.Addr().String()
		srv := d.metricsServer(ready)
		g.Go(func() error {
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("metrics endpoint: %w", err)
			}
			return nil
		})
		g.Go(func() error {
			<-ctx.Done()
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			return srv.Shutdown(sctx)
		})
	}
	g.Go(func() error { return d.Notifier.Watchdog(ctx, mgr.Alive) })
	for _, s := range d.Services {
		g.Go(func() error { return s(ctx) })
	}
	g.Go(func() error {
		select {
		case <-ready:
		case <-ctx.Done():
			return nil
		}
		d.Log.Info("sensu-tlsd running", "certificates", len(plans), "metrics", metricsAddr, "config", cfg.File)
		d.Notifier.Ready()
		for {
			select {
			case <-ctx.Done():
				d.Notifier.Stopping()
				d.Log.Info("shutting down")
				return nil
			case <-hup:
				d.reload(ctx, mgr, cfg.MetricsAddress)
			}
		}
	})
	return g.Wait()
}

// reload applies a re-read configuration, or keeps the running one when
// the new one is broken: every part prepares it before any part changes.
func (d *Daemon) reload(ctx context.Context, mgr *rotate.Manager, metricsAddr string) {
	d.Notifier.Reloading()
	defer d.Notifier.Ready()
	cfg, err := d.Load()
	var plans []rotate.Plan
	if err == nil {
		plans, err = rotate.Plans(cfg)
	}
	var pending []reload.Pending
	for _, r := range d.Reloaders {
		if err != nil {
			break
		}
		var p reload.Pending
		if p, err = r.Prepare(cfg); err == nil {
			pending = append(pending, p)
		}
	}
	if err != nil {
		for _, p := range pending {
			p.Abort()
		}
		d.Log.Error("new configuration rejected; the running one stays in effect", "error", err)
		return
	}
	if d.LogLevel != nil {
		d.LogLevel.Set(ParseLevel(cfg.LogLevel))
	}
	if cfg.MetricsAddress != metricsAddr {
		d.Log.Warn("metrics-address changes take effect on restart", "running", metricsAddr, "configured", cfg.MetricsAddress)
	}
	// Consumers first, then certificates: what the new plans publish at
	// once (a move, a first issue) reaches the consumers this
	// configuration describes. A proxy listener whose certificate is not
	// at its new paths yet waits for that Change, as for one not issued.
	for _, p := range pending {
		if err := p.Commit(ctx); err != nil {
			d.Log.Error("applying the new configuration", "error", err)
		}
	}
	if err := mgr.Apply(plans); err != nil {
		d.Log.Error("applying the new configuration", "error", err)
		return
	}
	d.Log.Info("configuration reloaded", "certificates", len(plans), "config", cfg.File)
}

func (d *Daemon) metricsServer(ready <-chan struct{}) *http.Server {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(d.Metrics.Registry, promhttp.HandlerOpts{}))
	for path, h := range d.Handlers {
		mux.Handle(path, h)
	}
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		select {
		case <-ready:
			fmt.Fprintln(w, "ok")
		default:
			http.Error(w, "starting", http.StatusServiceUnavailable)
		}
	})
	return &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
}

// ParseLevel maps the config's log-level to slog's (config.Validate has
// already rejected anything else).
func ParseLevel(s string) slog.Level {
	switch s {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}
