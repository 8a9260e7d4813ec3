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
