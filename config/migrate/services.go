package migrate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"syscall"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/config"
	"github.com/sensu-tlsd/sensu-tlsd/config/sensu"
	"github.com/sensu-tlsd/sensu-tlsd/systemd"
)

// SystemdServices does the steps with the daemon's own machinery, the
// services of its dispatcher: sensu-backend and sensu-agent with their
// presets' restart and health gates (and the service locks the daemon
// shares), and a reload of sensu-tlsd's unit, gated here on its proxy
// serving TLS on the addresses it must take and on nothing answering
// where it let go.
type SystemdServices struct {
	Dispatcher *systemd.Dispatcher
	// Backend, Agent and Proxy name the dispatcher's services.
	Backend, Agent, Proxy string
	ProxyTimeout          time.Duration // how long the proxy may take (0: 30s)
	// BackendUnit is the backend service's systemd unit and
	// SystemdAddress the bus, for StopBackend (a cluster member's peer
	// URLs move while it is down).
	BackendUnit, SystemdAddress string
	// BackendByCommand: the backend service's action is a command, so
	// systemd does not run it and StopBackend runs BackendStop (its
	// stop-command, nil when it has none), and the command starts it again.
	BackendByCommand bool
	BackendStop      *systemd.Command
	// stopped: StopBackend stopped the unit, so the next RestartBackend
	// starts it first (the dispatcher leaves a stopped unit alone).
	stopped bool
}

// NewSystemdServices builds the dispatcher the daemon would build from
// cfg, with the node's Sensu files, and adds what the cutover needs that
// cfg may lack: a service for each Sensu preset (with the preset's
// defaults) and a reload of tlsdUnit, whose own gate is the daemon's
// /healthz when metrics-address is set. A daemon that systemd does not run
// is reloaded by the services entry named tlsdService instead (a signal or
// command action), with the same gate when the entry has no health check.
func NewSystemdServices(cfg *config.Config, n *Node, tlsdUnit, tlsdService string, log *slog.Logger) (*SystemdServices, error) {
	c := *cfg
	c.Sensu.BackendConfig, c.Sensu.BackendEnvFiles = n.Files.Backend, append([]string{}, n.Files.BackendEnv...)
	c.Services = append([]config.Service(nil), cfg.Services...)
	s := &SystemdServices{Backend: serviceFor(&c, systemd.PresetSensuBackend), Agent: serviceFor(&c, systemd.PresetSensuAgent), Proxy: "migrate-sensu-tlsd",
		SystemdAddress: cfg.ServiceActions.SystemdAddress, BackendUnit: sensu.ServiceOf(sensu.Backend).Unit}
	for _, sc := range c.Services {
		if sc.Name != s.Backend {
			continue
		}
		if sc.Unit != "" {
			s.BackendUnit = sc.Unit
		}
		if sc.Action == "command" {
			s.BackendByCommand = true
			if len(sc.StopCommand) > 0 {
				s.BackendStop = &systemd.Command{Service: sc.Name, Args: sc.StopCommand, Timeout: sc.Timeout}
			}
		}
	}
	reload := &config.Service{Name: s.Proxy, Unit: tlsdUnit, Action: "reload", SelfChecked: true}
	if tlsdService != "" {
		reload = nil
		for i := range c.Services {
			if c.Services[i].Name == tlsdService {
				reload = &c.Services[i]
			}
		}
		if reload == nil {
			return nil, fmt.Errorf("--tlsd-service %q: no services entry has that name; add one that reloads the sensu-tlsd daemon "+
				"(action signal, signal HUP, pid-file; or action command), or leave the flag out to reload %s through systemd", tlsdService, tlsdUnit)
		}
		s.Proxy = tlsdService
	}
	if cfg.MetricsAddress != "" && reload.Health.URL == "" && len(reload.Health.TLS) == 0 && reload.Health.TCP == "" {
		// The daemon answers again once it has taken the new config.
		reload.Health.URL = "http://" + cfg.MetricsAddress + "/healthz"
	}
	if tlsdService == "" {
		c.Services = append(c.Services, *reload)
	}
	d, err := systemd.FromConfig(&c, log, nil)
	if err != nil {
		return nil, err
	}
	s.Dispatcher = d
	return s, nil
}

// serviceFor is the name of cfg's service with preset, added with the
// preset's defaults when the config has none.
func serviceFor(cfg *config.Config, preset string) string {
	for _, s := range cfg.Services {
		if s.Preset == preset {
			return s.Name
		}
	}
	cfg.Services = append(cfg.Services, config.Service{Name: "migrate-" + preset, Preset: preset})
	return "migrate-" + preset
}

// Close drops the dispatcher's systemd connection.
func (s *SystemdServices) Close() { s.Dispatcher.Close() }

// Do runs one step and its gate.
func (s *SystemdServices) Do(ctx context.Context, st Step) error {
	switch st.Action {
	case StopBackend:
		if err := s.stopBackend(ctx); err != nil {
			return err
		}
		s.stopped = true
		return nil
	case RestartBackend:
		if s.stopped && !s.BackendByCommand {
			if err := s.job(ctx, "start"); err != nil {
				return err
			}
		}
		s.stopped = false
		return s.act(ctx, s.Backend, st.Files)
	case RestartAgent:
		return s.act(ctx, s.Agent, st.Files)
	case ReloadProxy:
		if err := s.act(ctx, s.Proxy, nil); err != nil {
			return err
		}
		var checks []systemd.Check
		for _, a := range st.Take {
			checks = append(checks, systemd.TLSCheck{Address: a})
		}
		for _, a := range st.Release {
			checks = append(checks, released{a})
		}
		h := systemd.Health{Checks: checks, Timeout: s.ProxyTimeout}
		if err := h.Wait(ctx, systemd.Expect{}); err != nil {
			return fmt.Errorf("service %s after the reload: %w", s.Proxy, err)
		}
		return nil
	}
	return fmt.Errorf("unknown step %s", st.Action)
}

// act runs a dispatcher service for the changed files, as a rotation
// would for a rewritten config.
func (s *SystemdServices) act(ctx context.Context, service string, files []string) error {
	return s.Dispatcher.Act(ctx, service, systemd.Batch{{Name: "migrate", Files: files}})
}

// stopBackend stops sensu-backend through systemd, or by the backend
// service's stop-command when systemd does not run it (action command).
func (s *SystemdServices) stopBackend(ctx context.Context) error {
	if !s.BackendByCommand {
		return s.job(ctx, "stop")
	}
	if s.BackendStop == nil {
		return fmt.Errorf("services entry %s has action command and no stop-command, but a cluster member's sensu-backend must be down while etcd moves its peer URLs: "+
			"add stop-command, a program that stops it and returns once it has exited (its command starts it again)", s.Backend)
	}
	_, err := s.BackendStop.Run(ctx, systemd.Batch{{Name: "migrate"}})
	return err
}

// job stops or starts the backend's unit and waits for systemd's result.
func (s *SystemdServices) job(ctx context.Context, mode string) error {
	conn, err := systemd.Connect(ctx, s.SystemdAddress)
	if err != nil {
		return fmt.Errorf("%s %s: connecting to systemd: %w", mode, s.BackendUnit, err)
	}
	defer conn.Close()
	queue := conn.StopUnitContext
	if mode == "start" {
		queue = conn.StartUnitContext
	}
	done := make(chan string, 1)
	if _, err := queue(ctx, s.BackendUnit, "replace", done); err != nil {
		return fmt.Errorf("%s %s: %w", mode, s.BackendUnit, err)
	}
	select {
	case result := <-done:
		if result != "done" {
			return fmt.Errorf("%s %s: systemd job ended %q (see journalctl -u %s)", mode, s.BackendUnit, result, s.BackendUnit)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s %s: waiting for the job: %w", mode, s.BackendUnit, ctx.Err())
	}
}

// released passes once nothing accepts connections at Address: the proxy
// let the port go, so the backend can bind it.
type released struct{ Address string }

func (c released) String() string { return "released " + c.Address }

func (c released) Probe(ctx context.Context, _ systemd.Expect) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", c.Address)
	if err == nil {
		conn.Close()
		return fmt.Errorf("%s still accepts connections", c.Address)
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return nil
	}
	return fmt.Errorf("%s: %w", c.Address, err)
}
