package config_test

import (
	"strings"
	"testing"

	"github.com/sensu-tlsd/sensu-tlsd/config"
)

func TestEnrolConfigDefaultsAndChecks(t *testing.T) {
	c, err := config.Parse("tlsd.yml", []byte(`state-dir: /s
certificates:
  - name: backend-1
    profile: backend
  - name: agent
    profile: agent
    ca-file: /s/agent-ca.pem
    issuer: {type: enrol, enrol: {urls: ["https://b1:8442"], ca-file: /etc/sensu/ca.pem}}
enrol-server:
  listen: ":8442"
  certificate: backend-1
  autosign: ["web-*"]
`))
	if err != nil {
		t.Fatal(err)
	}
	es := c.EnrolServer
	if es.Store != "file" || es.SensuAPICAFile != "/s/ca.pem" || es.Lifetime != c.Defaults.Lifetime {
		t.Errorf("enrol-server defaults: %+v", es)
	}
	if c.Certificates[1].TrustedCA != "/etc/sensu/ca.pem" {
		t.Errorf("the enrol issuer's trusted-ca is %q, want its ca-file", c.Certificates[1].TrustedCA)
	}

	_, err = config.Parse("tlsd.yml", []byte(`certificates:
  - name: agent
    profile: client
    hosts: [a.example]
    issuer: {type: enrol, enrol: {urls: ["http://b1:8442"]}}
enrol-server:
  listen: "8442"
  certificate: nope
  sensu-api-url: "ftp://x"
  autosign: ["web-["]
  store: consul
`))
	for _, want := range []string{
		`certificates[0] (agent).issuer.enrol.urls[0]: "http://b1:8442" is not an https URL`,
		`certificates[0] (agent).issuer.enrol.ca-file: the enrol issuer needs the CA`,
		`certificates[0] (agent).profile: "client": the enrol-server signs agent certificates only`,
		`certificates[0] (agent).hosts: the enrol-server signs the agent's name only`,
		`enrol-server.listen: "8442" is not host:port`,
		`enrol-server.certificate: names certificate "nope", which is not in certificates`,
		`enrol-server.sensu-api-url: "ftp://x" is not the URL of the Sensu API`,
		`enrol-server.autosign[0]: "web-[" is not a glob of agent names`,
		`enrol-server.store: "consul": use file or etcd`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}
