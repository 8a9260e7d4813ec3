package config_test

import (
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
