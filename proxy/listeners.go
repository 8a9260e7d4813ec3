package proxy

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sensu-tlsd/sensu-tlsd/config"
	"github.com/sensu-tlsd/sensu-tlsd/rotate"
)

// Listeners keeps the daemon's proxy listeners in step with its config
// across reloads. It is the one bus subscriber for all of them, so a
// reload that replaces the listeners leaves no stale subscriber behind.
type Listeners struct {
	metrics *Metrics
	log     *slog.Logger

	mu         sync.Mutex
	group      *Group
	running    listenerSet
	runningCfg *config.Config // what group was started from, to restore it
}

// listenerSet is what a Group was started from: the listeners and the
// certificates they serve. Equal sets need no restart.
type listenerSet struct {
	listeners []config.Listener
	certs     []config.Certificate
}

func listenerSetOf(cfg *config.Config) listenerSet {
	set := listenerSet{listeners: cfg.Listeners}
	for _, ln := range cfg.Listeners {
		if c, ok := cfg.Certificate(ln.Certificate); ok {
			set.certs = append(set.certs, *c)
		}
	}
	return set
}

// NewListeners registers the proxy metrics on reg once for the life of
// the daemon.
func NewListeners(reg prometheus.Registerer, log *slog.Logger) (*Listeners, error) {
	m, err := NewMetrics(reg)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	return &Listeners{metrics: m, log: log}, nil
}

// Check builds every listener of cfg without binding anything, so a
// reload can reject a configuration whose listeners cannot start (a
// missing client-ca, a bad target) before any of it is applied.
func (l *Listeners) Check(cfg *config.Config) error {
	for i, ln := range cfg.Listeners {
		var cert config.Certificate
		if c, ok := cfg.Certificate(ln.Certificate); ok {
			cert = *c
		}
		spec := SpecFromConfig(ln, cert)
		spec.CertMayBePending = true
		if _, _, err := Build(spec, nil, l.log); err != nil {
			return fmt.Errorf("listeners[%d] (%s): %w", i, ln.Name, err)
		}
	}
	return nil
}

// Apply starts the listeners of cfg, or replaces the running ones when
// they changed. A configuration that fails Check leaves the running
// listeners alone; replaced listeners drain within their drain-timeout
// (bounded by ctx) before the new ones bind the same ports, and when the
// new ones cannot bind (a port taken meanwhile) the previous ones come
// back.
func (l *Listeners) Apply(ctx context.Context, cfg *config.Config) error {
	want := listenerSetOf(cfg)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.group != nil && reflect.DeepEqual(want, l.running) {
		return nil
	}
	if err := l.Check(cfg); err != nil {
		return fmt.Errorf("%w (the running listeners stay)", err)
	}
	prev := l.runningCfg
	if l.group != nil {
		if err := l.group.Shutdown(ctx); err != nil {
			l.log.Warn("draining the replaced proxy listeners", "error", err)
		}
		l.group, l.running, l.runningCfg = nil, listenerSet{}, nil
	}
	if err := l.start(cfg, want); err != nil {
		if prev != nil {
			if back := l.start(prev, listenerSetOf(prev)); back != nil {
				return fmt.Errorf("%w; restarting the previous listeners failed too: %v", err, back)
			}
			return fmt.Errorf("%w (the previous listeners are back)", err)
		}
		return err
	}
	return nil
}

// start binds the listeners of cfg; l.mu is held.
func (l *Listeners) start(cfg *config.Config, set listenerSet) error {
	g, err := StartFromConfig(cfg, l.metrics, l.log)
	if err != nil {
		return err
	}
	l.group, l.running, l.runningCfg = g, set, cfg
	for i, a := range g.Addrs() {
		l.log.Info("proxy listener serving", "listener", cfg.Listeners[i].Name, "mode", cfg.Listeners[i].Mode, "address", a.String())
	}
	return nil
}

// CertificateChanged forwards a rotation to the running listeners.
func (l *Listeners) CertificateChanged(ctx context.Context, c rotate.Change) error {
	l.mu.Lock()
	g := l.group
	l.mu.Unlock()
	if g == nil {
		return nil
	}
	return g.CertificateChanged(ctx, c)
}

// Agents lists the Sensu agents the running listeners have seen.
func (l *Listeners) Agents() []AgentSeen {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.group == nil {
		return nil
	}
	return l.group.Agents()
}

// Shutdown drains the running listeners.
func (l *Listeners) Shutdown(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.group == nil {
		return nil
	}
	err := l.group.Shutdown(ctx)
	l.group, l.running, l.runningCfg = nil, listenerSet{}, nil
	return err
}
