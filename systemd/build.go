package systemd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sensu-tlsd/sensu-tlsd/config"
	"github.com/sensu-tlsd/sensu-tlsd/config/sensu"
)

// Preset names.
const (
	PresetSensuBackend = "sensu-backend"
	PresetSensuAgent   = "sensu-agent"
)

// preset is the built-in knowledge about one Sensu service, from
// config/sensu (sensu.ServiceOf).
type preset struct {
	unit          string
	action        string
	healthTimeout time.Duration
	// forbidden maps an action or signal to why it must never be used.
	forbidden map[string]string
}

func presetOf(r sensu.Role) preset {
	s := sensu.ServiceOf(r)
	return preset{unit: s.Unit, action: s.Action, healthTimeout: s.HealthTimeout, forbidden: s.Refused}
}

var presets = map[string]preset{
	PresetSensuBackend: presetOf(sensu.Backend),
	PresetSensuAgent:   presetOf(sensu.Agent),
	"":                 {healthTimeout: 30 * time.Second},
}

// FromConfig builds the dispatcher for cfg's services and the certificates
// that name them. It connects to systemd only when a unit action first
// runs, so a config without unit actions never needs D-Bus.
//
// Service locks live in STATE-DIR/services, shared with every sensu-tlsd
// process of that state directory (none when cfg.StateDir is ""); a
// directory the process cannot use is an error here, at start.
func FromConfig(cfg *config.Config, log *slog.Logger, reg *prometheus.Registry) (*Dispatcher, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	sd := &lazySystemd{address: cfg.ServiceActions.SystemdAddress}
	var services []*Service
	var errs []error
	for i, sc := range cfg.Services {
		s, err := serviceFromConfig(sc, cfg.Sensu, sd)
		if err == nil && sc.Preset == PresetSensuBackend {
			s.Serializer = ClusterRestartLock{BackendFile: backendFile(cfg.Sensu), BackendEnvFiles: sensu.EnvFilesOf(sensu.Backend, cfg.Sensu.BackendEnvFiles),
				Timeout: cfg.ServiceActions.RestartLockTimeout}
		}
		switch {
		case err != nil:
			// Reported with the rest; the name stays defined so the
			// routes to it are checked, not reported as undefined.
			errs = append(errs, fmt.Errorf("services[%d] (%s): %w", i, sc.Name, err))
			s = &Service{Name: sc.Name}
		case len(s.Health.Checks) == 0 && sc.Preset == "" && sc.Action != "none" && !sc.SelfChecked:
			log.Warn("service has no health check: an action is not verified and a certificate it cannot use is not rolled back",
				"service", sc.Name, "fix", fmt.Sprintf("add health.url, health.tls or health.tcp to services[%d]", i))
		}
		services = append(services, s)
	}
	lockDir := ""
	if cfg.StateDir != "" && len(services) > 0 {
		lockDir = filepath.Join(cfg.StateDir, "services")
		if err := checkLockDir(lockDir); err != nil {
			errs = append(errs, err)
		}
	}
	routes := map[string][]string{}
	for _, c := range cfg.Certificates {
		routes[c.Name] = c.Services
	}
	d, err := NewDispatcher(DispatcherOptions{
		Services: services, Routes: routes, Coalesce: cfg.ServiceActions.Coalesce,
		Parallel: cfg.ServiceActions.Parallel, LockDir: lockDir, Log: log, Registry: reg,
	})
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	d.closers = append(d.closers, sd.Close)
	return d, nil
}

func serviceFromConfig(sc config.Service, sensuCfg config.Sensu, sd UnitManager) (*Service, error) {
	if sc.Name == "" {
		return nil, fmt.Errorf("key name is empty; give every service a name that certificates can list")
	}
	p, ok := presets[sc.Preset]
	if !ok {
		return nil, fmt.Errorf("key preset: unknown %q (want %s, %s or empty for a generic service)", sc.Preset, PresetSensuBackend, PresetSensuAgent)
	}
	if sc.Unit == "" {
		sc.Unit = p.unit
	}
	if sc.Action == "" {
		sc.Action = p.action
	}
	onlyIfRunning := sc.OnlyIfRunning == nil || *sc.OnlyIfRunning
	action, err := actionFromConfig(sc, p, sd, onlyIfRunning)
	if err != nil {
		return nil, err
	}
	health := Health{Timeout: sc.Health.Timeout, Interval: sc.Health.Interval}
	if health.Timeout == 0 {
		health.Timeout = p.healthTimeout
	}
	if sc.Health.URL != "" {
		health.Checks = append(health.Checks, HTTPCheck{URL: sc.Health.URL})
	}
	for _, a := range sc.Health.TLS {
		health.Checks = append(health.Checks, TLSCheck{Address: a})
	}
	if sc.Health.TCP != "" {
		health.Checks = append(health.Checks, TCPCheck{Address: sc.Health.TCP})
	}
	var trigger Trigger = Always{}
	switch sc.Preset {
	case PresetSensuBackend:
		trigger = NewSensuBackend(backendFile(sensuCfg), sensu.EnvFilesOf(sensu.Backend, sensuCfg.BackendEnvFiles))
	case PresetSensuAgent:
		trigger = Agent{}
		if len(health.Checks) == 0 {
			health.Checks = []Check{HTTPCheck{URL: sensu.DefaultAgentHealthURL()}}
		}
	}
	return &Service{Name: sc.Name, Trigger: trigger, Action: withTimeout{action, sc.Timeout}, Health: health}, nil
}

// backendFile is the backend.yml the sensu-backend preset reads.
func backendFile(c config.Sensu) string {
	if c.BackendConfig == "" {
		return sensu.DefaultBackendConfig
	}
	return c.BackendConfig
}

func actionFromConfig(sc config.Service, p preset, sd UnitManager, onlyIfRunning bool) (Action, error) {
	// A generic service naming a Sensu unit gets that preset's rules too.
	forbidden := func(key string) error {
		if why, bad := p.forbidden[key]; bad {
			return fmt.Errorf("action %s refused for preset %s: %s", key, sc.Preset, why)
		}
		for _, q := range presets {
			if why, bad := q.forbidden[key]; bad && q.unit != "" && q.unit == sc.Unit {
				return fmt.Errorf("action %s refused for unit %s: %s", key, sc.Unit, why)
			}
		}
		return nil
	}
	if len(sc.StopCommand) > 0 && sc.Action != "command" {
		return nil, fmt.Errorf("key stop-command goes with action command (a %q service is stopped through systemd): remove it, or set action: command", sc.Action)
	}
	switch sc.Action {
	case "restart", "try-restart", "reload":
		if err := forbidden(sc.Action); err != nil {
			return nil, err
		}
		if sc.Unit == "" {
			return nil, fmt.Errorf("action %s needs key unit (the systemd unit to %s)", sc.Action, sc.Action)
		}
		return UnitJob{Systemd: sd, Unit: sc.Unit, Mode: JobMode(sc.Action), OnlyIfRunning: onlyIfRunning}, nil
	case "signal":
		sig, err := ParseSignal(sc.Signal)
		if err != nil {
			return nil, fmt.Errorf("key signal: %w", err)
		}
		if err := forbidden("signal " + signalName(sig)[3:]); err != nil {
			return nil, err
		}
		if sc.PIDFile != "" {
			return PIDSignal{PIDFile: sc.PIDFile, Signal: sig}, nil
		}
		if sc.Unit == "" {
			return nil, fmt.Errorf("action signal needs key pid-file or unit")
		}
		return UnitSignal{Systemd: sd, Unit: sc.Unit, Signal: sig}, nil
	case "command":
		if len(sc.Command) == 0 {
			return nil, fmt.Errorf("action command needs key command (an argument list)")
		}
		return Command{Service: sc.Name, Args: sc.Command, Timeout: sc.Timeout}, nil
	case "none":
		return None{}, nil
	case "":
		return nil, fmt.Errorf("key action is empty (want restart, try-restart, reload, signal, command or none)")
	}
	return nil, fmt.Errorf("key action: unknown %q (want restart, try-restart, reload, signal, command or none)", sc.Action)
}

// withTimeout bounds an action; 0 means 2 minutes, long enough for a
// backend restart that waits for an etcd election.
type withTimeout struct {
	Action
	timeout time.Duration
}

func (w withTimeout) Run(ctx context.Context, b Batch) (Outcome, error) {
	t := w.timeout
	if t <= 0 {
		t = 2 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, t)
	defer cancel()
	return w.Action.Run(ctx, b)
}

// lazySystemd connects on first use and again after the connection broke
// (systemd re-executing drops it).
type lazySystemd struct {
	address string
	mu      sync.Mutex
	conn    *sddbus.Conn
}

func (l *lazySystemd) get(ctx context.Context) (*sddbus.Conn, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn != nil && l.conn.Connected() {
		return l.conn, nil
	}
	if l.conn != nil {
		l.conn.Close()
	}
	conn, err := Connect(ctx, l.address)
	if err != nil {
		return nil, fmt.Errorf("connecting to systemd: %w", err)
	}
	l.conn = conn
	return conn, nil
}

func (l *lazySystemd) RestartUnitContext(ctx context.Context, name, mode string, ch chan<- string) (int, error) {
	c, err := l.get(ctx)
	if err != nil {
		return 0, err
	}
	return c.RestartUnitContext(ctx, name, mode, ch)
}

func (l *lazySystemd) TryRestartUnitContext(ctx context.Context, name, mode string, ch chan<- string) (int, error) {
	c, err := l.get(ctx)
	if err != nil {
		return 0, err
	}
	return c.TryRestartUnitContext(ctx, name, mode, ch)
}

func (l *lazySystemd) ReloadUnitContext(ctx context.Context, name, mode string, ch chan<- string) (int, error) {
	c, err := l.get(ctx)
	if err != nil {
		return 0, err
	}
	return c.ReloadUnitContext(ctx, name, mode, ch)
}

func (l *lazySystemd) KillUnitWithTarget(ctx context.Context, name string, target sddbus.Who, signal int32) error {
	c, err := l.get(ctx)
	if err != nil {
		return err
	}
	return c.KillUnitWithTarget(ctx, name, target, signal)
}

func (l *lazySystemd) GetUnitPropertyContext(ctx context.Context, unit, property string) (*sddbus.Property, error) {
	c, err := l.get(ctx)
	if err != nil {
		return nil, err
	}
	return c.GetUnitPropertyContext(ctx, unit, property)
}

// Close drops the systemd connection, if one was made.
func (l *lazySystemd) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn != nil {
		l.conn.Close()
		l.conn = nil
	}
}
