package config_test

import (
	"strings"
	"testing"

	"github.com/sensu-tlsd/sensu-tlsd/config"
)

func TestListenerAgentIdentityNeedsClientCAOnATLSListener(t *testing.T) {
	const base = "certificates:\n  - name: b\n    profile: backend\nlisteners:\n  - name: agents\n    listen: :8081\n    targets: [127.0.0.1:18081]\n    certificate: b\n"
	ok := base + "    mode: terminate\n    client-ca: /etc/sensu/tls/ca.pem\n    agent-identity: uri\n    deny-file: /etc/sensu/tlsd-deny\n"
	c, err := config.Parse("tlsd.yml", []byte(ok))
	if err != nil {
		t.Fatal(err)
	}
	if l := c.Listeners[0]; l.AgentIdentity != "uri" || l.DenyFile != "/etc/sensu/tlsd-deny" {
		t.Fatalf("parsed %+v", l)
	}
	for extra, want := range map[string]string{
		"    mode: terminate\n    agent-identity: cn\n":                                               "listeners[0].agent-identity: needs client-ca",
		"    mode: terminate\n    client-ca: /ca.pem\n    agent-identity: name\n":                     `agent-identity: "name" is unknown`,
		"    mode: originate\n    client-ca: /ca.pem\n    agent-identity: cn\n":                       "agent-identity: binds the client certificates of a listener that terminates TLS",
		"    mode: dual\n    client-ca: /ca.pem\n    agent-identity: cn\n    allow-plaintext: true\n": "remove allow-plaintext",
		"    mode: originate\n    deny-file: /deny\n":                                                 "deny-file: refuses TLS clients",
	} {
		if _, err := config.Parse("tlsd.yml", []byte(base+extra)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", extra, err, want)
		}
	}
}

func TestCertificateNamespaceIsForAgents(t *testing.T) {
	for conf, want := range map[string]string{
		"certificates:\n  - {name: a, profile: agent, namespace: prod}\n":    "",
		"certificates:\n  - {name: b, profile: backend, namespace: prod}\n":  "certificates[0] (b).namespace: binds an agent certificate",
		"certificates:\n  - {name: a, profile: agent, namespace: \"a b\"}\n": `namespace: "a b" is not a Sensu namespace`,
	} {
		_, err := config.Parse("tlsd.yml", []byte(conf))
		if (want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), want)) {
			t.Errorf("%s: %v, want %q", conf, err, want)
		}
	}
}
