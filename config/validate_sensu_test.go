package config_test

import (
	"strings"
	"testing"

	"github.com/sensu-tlsd/sensu-tlsd/config"
)

// With agent.yml cert-file set, sensu-agent stops sending Basic auth, which
// only the commercial backend does without: agent mTLS needs it said.
func TestAgentMTLSRequiresTheCommercialBackend(t *testing.T) {
	p := writeConfig(t, "sensu:\n  agent-mtls: true\n")
	_, err := config.Load(config.LoadOptions{File: p})
	if err == nil || !strings.Contains(err.Error(), "sensu.agent-mtls: agent certificates need the commercial backend") || !strings.Contains(err.Error(), "set sensu.commercial: true") {
		t.Errorf("agent-mtls without commercial: %v", err)
	}
	if _, err := config.Load(config.LoadOptions{File: writeConfig(t, "sensu:\n  agent-mtls: true\n  commercial: true\n")}); err != nil {
		t.Errorf("agent-mtls with commercial: %v", err)
	}
}

func TestAgentCutover(t *testing.T) {
	cfg, err := config.Load(config.LoadOptions{File: writeConfig(t, "sensu:\n  agent-ca-file: /etc/sensu/tls/ca.pem\nagent-cutover:\n  enabled: true\n")})
	if err != nil {
		t.Fatal(err)
	}
	if ac := cfg.AgentCutover; ac.CAFile != "/etc/sensu/tls/ca.pem" || ac.Interval.String() != "30s" || ac.Service != "sensu-agent" {
		t.Errorf("defaults: %+v", ac)
	}
	_, err = config.Load(config.LoadOptions{File: writeConfig(t, "agent-cutover:\n  enabled: true\n  ca-fingerprint-sha256: AB:CD\n  interval: 100ms\n  reconnect-timeout: 10ms\n")})
	for _, want := range []string{
		"agent-cutover.ca-file: empty: name the CA bundle the agent is to trust",
		`agent-cutover.ca-fingerprint-sha256: "AB:CD": write the 32 bytes as hex pairs`,
		"agent-cutover.interval: 100ms is too short",
		"agent-cutover.reconnect-timeout: 10ms is too short",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q: %v", want, err)
		}
	}
	if _, err := config.Load(config.LoadOptions{File: writeConfig(t, "agent-cutover:\n  ca-fingerprint-sha256: nonsense\n")}); err != nil {
		t.Errorf("a disabled agent-cutover is not checked: %v", err)
	}
}
