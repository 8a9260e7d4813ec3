package config_test

import (
	"strings"
	"testing"

	"github.com/sensu-tlsd/sensu-tlsd/config"
)

// Agent mTLS works on either build: with the commercial backend through
// agent.yml cert-file and agent-auth-*, on the open-source one through
// sensu-tlsd's agent binding (config/migrate), so neither is refused.
func TestAgentMTLSOnEitherBuild(t *testing.T) {
	for _, conf := range []string{"sensu:\n  agent-mtls: true\n", "sensu:\n  agent-mtls: true\n  commercial: true\n"} {
		c, err := config.Load(config.LoadOptions{File: writeConfig(t, conf)})
		if err != nil || !c.Sensu.AgentMTLS {
			t.Errorf("%q: %v", conf, err)
		}
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
