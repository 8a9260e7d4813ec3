package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/config"
)

func TestValidNameRejectsWhatCannotNameFiles(t *testing.T) {
	for _, name := range []string{"backend-1", "agent_1", "etcd.peer", "a"} {
		if err := config.ValidName(name); err != nil {
			t.Errorf("ValidName(%q): %v", name, err)
		}
	}
	for _, name := range []string{"", "/", "../escape", `a\b`, "a/b", ".", "..", ".hidden", "a\x00b"} {
		if err := config.ValidName(name); err == nil {
			t.Errorf("ValidName(%q) accepted it", name)
		}
	}
	_, err := config.Parse("tlsd.yml", []byte("certificates:\n  - name: ../escape\n    profile: server\n"))
	if err == nil || !strings.Contains(err.Error(), "certificates[0] (../escape).name") || !strings.Contains(err.Error(), "../escape") {
		t.Fatalf("config with a certificate named ../escape: %v", err)
	}
}

func TestRenewBeforeAcceptsDaysEverywhere(t *testing.T) {
	c, err := config.Parse("tlsd.yml", []byte("renewal: {before: 30d}\ncertificates:\n  - name: a\n    profile: server\n    renew-before: 2d\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, d, err := config.ParseRenewBefore(c.Certificates[0].RenewBefore); err != nil || d != 48*time.Hour {
		t.Fatalf("renew-before 2d: %v %v", d, err)
	}
	for _, bad := range []string{"NaN%", "0%", "100%", "0d", "NaNd", "1e300d", "soon"} {
		if _, _, err := config.ParseRenewBefore(bad); err == nil {
			t.Errorf("ParseRenewBefore(%q) accepted it", bad)
		}
	}
}

func TestCAFileDefaultsAndSharing(t *testing.T) {
	c, err := config.Parse("tlsd.yml", []byte(`state-dir: /s
certificates:
  - name: backend-1
    profile: backend
  - name: backend-2
    profile: backend
  - name: api
    profile: server
    ca-file: /s/api-ca.pem
    issuer: {type: exec, exec: {command: [/bin/issue]}}
`))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"backend-1": "/s/ca.pem", "backend-2": "/s/ca.pem"} {
		if cert, _ := c.Certificate(name); cert.CAFile != want {
			t.Errorf("%s: ca-file %s, want %s", name, cert.CAFile, want)
		}
	}
	if cert, _ := c.Certificate("backend-1"); cert.TrustedCA != "/s/ca.pem" {
		t.Errorf("local-ca trusted-ca %q, want the local CA /s/ca.pem", cert.TrustedCA)
	}
	if cert, _ := c.Certificate("api"); cert.TrustedCA != "" {
		t.Errorf("exec trusted-ca %q, want none unless set", cert.TrustedCA)
	}

	// Two exec certificates with the same command may share a bundle;
	// a local-ca and an exec certificate may not, not even by default.
	same := `state-dir: /s
certificates:
  - name: a
    profile: server
    ca-file: /s/shared.pem
    issuer: {type: exec, exec: {command: [/bin/issue]}}
  - name: b
    profile: server
    ca-file: /s/shared.pem
    issuer: {type: exec, exec: {command: [/bin/issue]}}
`
	if _, err := config.Parse("tlsd.yml", []byte(same)); err != nil {
		t.Fatalf("two exec certificates sharing a ca-file: %v", err)
	}
	mixed := `state-dir: /s
certificates:
  - name: backend-1
    profile: backend
  - name: api
    profile: server
    issuer: {type: exec, exec: {command: [/bin/issue]}}
`
	_, err = config.Parse("tlsd.yml", []byte(mixed))
	for _, want := range []string{"certificates[1] (api).ca-file", "/s/ca.pem", "certificates[0] (backend-1)", "the local CA", "/bin/issue", "/s/api-ca.pem"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("a ca-file shared by local-ca and exec: %v, want it to name %q", err, want)
		}
	}
	twoACME := `state-dir: /s
certificates:
  - name: a
    profile: server
    hosts: [a]
    ca-file: /s/acme-ca.pem
    issuer: {type: acme, acme: {directory: "https://acme.example/dir"}}
  - name: b
    profile: server
    hosts: [b]
    ca-file: /s/acme-ca.pem
    issuer: {type: acme, acme: {directory: "https://acme.example/dir"}}
`
	if _, err := config.Parse("tlsd.yml", []byte(twoACME)); err == nil || !strings.Contains(err.Error(), "acme.ca-bundle") {
		t.Errorf("two ACME certificates sharing a ca-file without ca-bundle: %v, want a hint at acme.ca-bundle", err)
	}
	keyAsCA := `state-dir: /s
certificates:
  - name: a
    profile: server
  - name: b
    profile: server
    ca-file: /s/a-key.pem
`
	if _, err := config.Parse("tlsd.yml", []byte(keyAsCA)); err == nil || !strings.Contains(err.Error(), "is also the key-file of certificates[0] (a)") {
		t.Errorf("a ca-file that is another certificate's key: %v", err)
	}
}

func TestEventsDefaultsAndValidation(t *testing.T) {
	c, err := config.Parse("tlsd.yml", []byte("events: {enabled: true}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Events.AgentAPIURL != "http://127.0.0.1:3031/events" || c.Events.Timeout != 2*time.Second {
		t.Fatalf("events defaults: %+v", c.Events)
	}
	_, err = config.Parse("tlsd.yml", []byte("events:\n  agent-api-url: 127.0.0.1:3031\n  handlers: [slack, 'bad handler']\n"))
	for _, want := range []string{`events.agent-api-url: "127.0.0.1:3031" is not an http URL`, `events.handlers[1]: "bad handler"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("bad events block: want %q in %v", want, err)
		}
	}
}
