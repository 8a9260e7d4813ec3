package systemd

import (
	"bytes"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sensu-tlsd/sensu-tlsd/config"
)

// TestSensuUnitsKeepTheirRulesWithoutAPreset: a generic service that names
// sensu-agent.service or sensu-backend.service gets the preset's refusals,
// so SIGHUP cannot reach the agent by leaving preset out.
func TestSensuUnitsKeepTheirRulesWithoutAPreset(t *testing.T) {
	for _, c := range []struct {
		svc  config.Service
		want string
	}{
		{config.Service{Name: "a", Unit: "sensu-agent.service", Action: "signal", Signal: "HUP"},
			"action signal HUP refused for unit sensu-agent.service: sensu-agent dies on SIGHUP (exit 129)"},
		{config.Service{Name: "a", Unit: "sensu-agent.service", PIDFile: "/run/sensu-agent.pid", Action: "signal", Signal: "SIGHUP"},
			"action signal HUP refused for unit sensu-agent.service"},
		{config.Service{Name: "a", Unit: "sensu-agent.service", Action: "reload"},
			"action reload refused for unit sensu-agent.service: the packaged sensu-agent.service has no ExecReload"},
		{config.Service{Name: "b", Unit: "sensu-backend.service", Action: "reload"},
			"action reload refused for unit sensu-backend.service: sensu-backend 6.x reloads no certificates"},
		{config.Service{Name: "a", Preset: PresetSensuAgent, Action: "reload"},
			"action reload refused for preset sensu-agent"},
	} {
		_, err := FromConfig(&config.Config{Services: []config.Service{c.svc}}, nil, nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: got %v, want %q", c.svc, err, c.want)
		}
	}
	// The same unit with a restart, and another unit with SIGHUP, are fine.
	if _, err := FromConfig(&config.Config{Services: []config.Service{
		{Name: "a", Unit: "sensu-agent.service", Action: "restart"},
		{Name: "w", Unit: "nginx.service", Action: "signal", Signal: "HUP"},
	}}, nil, nil); err != nil {
		t.Fatal(err)
	}
}

// TestStopCommandGoesWithActionCommand: systemd stops a unit itself, so a
// stop-command beside a systemd action would never run.
func TestStopCommandGoesWithActionCommand(t *testing.T) {
	_, err := FromConfig(&config.Config{Services: []config.Service{
		{Name: "b", Preset: PresetSensuBackend, Action: "restart", StopCommand: []string{"/bin/true"}}}}, nil, nil)
	if want := `key stop-command goes with action command (a "restart" service is stopped through systemd)`; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("FromConfig = %v, want %q", err, want)
	}
	if _, err := FromConfig(&config.Config{Services: []config.Service{{Name: "b", Preset: PresetSensuBackend, Action: "command",
		Command: []string{"/bin/true"}, StopCommand: []string{"/bin/true"}}}}, nil, nil); err != nil {
		t.Fatal(err)
	}
}

// TestGenericServiceWithoutHealthIsWarnedAbout: nothing would verify its
// action, so loading says which service and which keys to add.
func TestGenericServiceWithoutHealthIsWarnedAbout(t *testing.T) {
	var out bytes.Buffer
	_, err := FromConfig(&config.Config{Services: []config.Service{
		{Name: "web", Unit: "nginx.service", Action: "reload", Health: config.Health{URL: "http://127.0.0.1/"}},
		{Name: "blind", Unit: "haproxy.service", Action: "reload"},
		{Name: "waits", Action: "none"},
		{Name: "sensu-agent", Preset: PresetSensuAgent},
	}}, slog.New(slog.NewTextHandler(&out, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := `level=WARN msg="service has no health check: an action is not verified and a certificate it cannot use is not rolled back" service=blind fix="add health.url, health.tls or health.tcp to services[1]"`
	if got := strings.TrimSpace(out.String()); !strings.HasSuffix(got, want) || strings.Count(got, "\n") != 0 {
		t.Fatalf("log:\n%s\nwant one line ending in\n%s", got, want)
	}
}

// TestBrokenServiceIsNotAlsoWarnedAboutHealth: a service whose config is
// refused gets that error alone, not a health warning about the
// placeholder kept for its routes.
func TestBrokenServiceIsNotAlsoWarnedAboutHealth(t *testing.T) {
	var out bytes.Buffer
	_, err := FromConfig(&config.Config{Services: []config.Service{{Name: "x", Unit: "nginx.service", Action: "restrat"}}},
		slog.New(slog.NewTextHandler(&out, nil)), nil)
	if err == nil || !strings.Contains(err.Error(), `key action: unknown "restrat"`) {
		t.Fatalf("FromConfig = %v, want the unknown action", err)
	}
	if out.Len() != 0 {
		t.Fatalf("the refused service was also logged:\n%s", out.String())
	}
}

// TestServicesListsTheChecksAnActionWaitsFor: the sensu-backend preset's
// checks come from backend.yml, the agent's default and a generic
// service's from its health block.
func TestServicesListsTheChecksAnActionWaitsFor(t *testing.T) {
	yml := filepath.Join(t.TempDir(), "backend.yml")
	writeFile(t, yml, "cert-file: /b.pem\nkey-file: /b-key.pem\napi-listen-address: 127.0.0.1:9080\nagent-port: 9081\n")
	d, err := FromConfig(&config.Config{
		Sensu: config.Sensu{BackendConfig: yml},
		Services: []config.Service{
			{Name: "sensu-backend", Preset: PresetSensuBackend},
			{Name: "sensu-agent", Preset: PresetSensuAgent},
			{Name: "web", Unit: "nginx.service", Action: "reload", Health: config.Health{TLS: []string{"127.0.0.1:443"}}},
		},
	}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, s := range d.Services() {
		got[s.Name] = strings.Join(s.Checks, " | ")
	}
	for name, want := range map[string]string{
		"sensu-backend": "GET https://127.0.0.1:9080/health | TLS 127.0.0.1:9080 | TLS 127.0.0.1:9081",
		"sensu-agent":   "GET http://127.0.0.1:3031/healthz",
		"web":           "TLS 127.0.0.1:443",
	} {
		if got[name] != want {
			t.Errorf("%s: checks %q, want %q", name, got[name], want)
		}
	}
}
