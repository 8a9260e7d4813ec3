package agentcutover

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sensu-tlsd/sensu-tlsd/config"
	"github.com/sensu-tlsd/sensu-tlsd/systemd"
)

// serviceRestarter restarts sensu-agent through the services entry
// agent-cutover.service names (the sensu-agent preset when none has that
// name), with the action and service lock every other restart uses, and
// the agent's /healthz as its health gate.
type serviceRestarter struct {
	cfg *config.Config
	log *slog.Logger
	reg *prometheus.Registry
}

// ServiceRestarter builds, for each configuration, the Restarter that acts
// through the systemd package's service actions.
func ServiceRestarter(log *slog.Logger, reg *prometheus.Registry) func(*config.Config) Restarter {
	return func(cfg *config.Config) Restarter { return serviceRestarter{cfg, log, reg} }
}

// Service is the services entry the follower restarts sensu-agent with.
func Service(cfg *config.Config) config.Service {
	name := cfg.AgentCutover.Service
	for _, s := range cfg.Services {
		if s.Name == name {
			return s
		}
	}
	return config.Service{Name: name, Preset: systemd.PresetSensuAgent}
}

func (r serviceRestarter) Restart(ctx context.Context, healthURL string, timeout time.Duration) error {
	svc := Service(r.cfg)
	if svc.Health.URL == "" {
		svc.Health.URL = healthURL // the api-port agent.yml sets, not the preset's default
	}
	svc.Health.Timeout = timeout
	only := &config.Config{StateDir: r.cfg.StateDir, Sensu: r.cfg.Sensu, ServiceActions: r.cfg.ServiceActions,
		Services: []config.Service{svc}}
	d, err := systemd.FromConfig(only, r.log, r.reg)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Act(ctx, svc.Name, nil)
}
