package inventory

import (
	"strings"
	"testing"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/config"
	"github.com/sensu-tlsd/sensu-tlsd/internal/pki"
	"github.com/sensu-tlsd/sensu-tlsd/rotate/ca"
)

// TestStatusChecksTheCertificateSensuTLSDPresentsForTheAgent: with agent
// mTLS on the open-source build, the agent certificate is in no agent.yml
// (sensu-tlsd presents it), so the config's agent-certificate gets the
// same CN rule as agent.yml cert-file, and a sensu:// URI SAN must name
// the agent's namespace too (agent-identity uri).
func TestStatusChecksTheCertificateSensuTLSDPresentsForTheAgent(t *testing.T) {
	dir := t.TempDir()
	agentYML := writeFile(t, "agent.yml", "name: web-1\nnamespace: prod\nbackend-url: [ws://127.0.0.1:8091]\n")
	cases := []struct {
		req    ca.Request
		ok     bool
		detail string
	}{
		{ca.Request{Name: "web-1", Profile: pki.Agent}, true, ""},
		{ca.Request{Name: "web-1", Profile: pki.Agent, Namespace: "prod"}, true, ""},
		{ca.Request{Name: "web-2", Profile: pki.Agent}, false, `subject CN is "web-2" but must be "web-1"`},
		{ca.Request{Name: "web-1", Profile: pki.Agent, Namespace: "default"}, false, "URI SAN sensu://default/web-1 does not name agent sensu://prod/web-1"},
	}
	for _, c := range cases {
		p := issueTo(t, dir, c.req)
		cfg := &config.Config{
			Certificates: []config.Certificate{{Name: "agent", Profile: "agent", CertFile: p.Cert, KeyFile: p.Key, CAFile: p.CA, Issuer: config.Issuer{Type: config.IssuerFiles}}},
			Sensu:        config.Sensu{AgentMTLS: true, AgentCertificate: "agent", AgentConfig: agentYML},
		}
		e := Inspect(FromConfig(cfg), time.Now())[0]
		got := checkNamed(t, e, pki.CheckCommonName)
		if got.OK != c.ok || !strings.Contains(got.Detail, c.detail) {
			t.Errorf("%+v: CN check %+v", c.req, got)
		}
		// The commercial build puts the certificate in agent.yml, where
		// agent.yml's own entry carries the rule.
		cfg.Sensu.Commercial = true
		for _, r := range Inspect(FromConfig(cfg), time.Now())[0].Checks {
			if r.Name == pki.CheckCommonName {
				t.Errorf("commercial build: the managed certificate got the CN check: %+v", r)
			}
		}
	}
}
