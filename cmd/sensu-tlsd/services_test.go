package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/sensu-tlsd/sensu-tlsd/internal/standintest"
	"github.com/sensu-tlsd/sensu-tlsd/internal/testca"
	"github.com/sensu-tlsd/sensu-tlsd/internal/testpeer"
)

// TestServicesCheckCatchesAMissedRestart runs the stand-in backend as a
// real process and drives `sensu-tlsd services`: list shows the preset's
// action, check passes while the backend serves the installed certificate
// and fails with exit 2, naming the served serial, once the files on disk
// changed without a restart.
func TestServicesCheckCatchesAMissedRestart(t *testing.T) {
	dir := t.TempDir()
	ca := testca.New(t)
	set := ca.WriteSet(t, dir, "backend", "backend-1")
	apiPort, agentPort := testpeer.FreePort(t), testpeer.FreePort(t)
	yml := filepath.Join(dir, "backend.yml")
	standintest.BackendYML(t, yml, set, apiPort, agentPort)
	standintest.Start(t, yml)
	testpeer.WaitTCP(t, fmt.Sprintf("127.0.0.1:%d", agentPort))

	cfg := filepath.Join(dir, "tlsd.yml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`state-dir: %[1]s/state
sensu:
  backend-config: %[2]s
certificates:
  - name: backend
    profile: backend
    hosts: [127.0.0.1, localhost]
    cert-file: %[3]s
    key-file: %[4]s
    ca-file: %[5]s
    services: [sensu-backend]
services:
  - name: sensu-backend
    preset: sensu-backend
`, dir, yml, set.CertFile, set.KeyFile, set.CAFile)), 0o644); err != nil {
		t.Fatal(err)
	}

	// The checks are the preset's, derived from backend.yml.
	list := mustRun(t, dir, nil, "--config", cfg, "services", "list")
	row := fmt.Sprintf(`(?m)^sensu-backend +restart sensu-backend\.service +backend +GET https://127\.0\.0\.1:%[1]d/health, TLS 127\.0\.0\.1:%[1]d, TLS 127\.0\.0\.1:%[2]d$`, apiPort, agentPort)
	if !regexp.MustCompile(row).MatchString(list.stdout) {
		t.Fatalf("services list:\n%s", list.stdout)
	}

	ok := mustRun(t, dir, nil, "--config", cfg, "services", "check")
	if !strings.HasPrefix(ok.stdout, "OK sensu-backend: ") || !strings.Contains(ok.stdout, fmt.Sprintf("TLS 127.0.0.1:%d", agentPort)) {
		t.Fatalf("services check:\n%s", ok.stdout)
	}

	// New files installed, backend not restarted: it still serves backend-1.
	ca.WriteSet(t, dir, "backend", "backend-2")
	bad := run(t, dir, nil, "--config", cfg, "services", "check", "--timeout", "1s")
	if bad.code != 2 || !strings.Contains(bad.stdout, "CRITICAL sensu-backend") || !strings.Contains(bad.stdout, "presents serial "+strings.ToUpper(set.Serial)) || !strings.Contains(bad.stdout, "not healthy within 1s") {
		t.Fatalf("services check after a missed restart: exit %d\n%s%s", bad.code, bad.stdout, bad.stderr)
	}

	unknown := run(t, dir, nil, "--config", cfg, "services", "check", "sensu-backnd")
	if unknown.code != 2 || !strings.Contains(unknown.stdout, `no service "sensu-backnd" (configured: sensu-backend)`) {
		t.Fatalf("unknown service: exit %d\n%s", unknown.code, unknown.stdout)
	}
}

// TestServicesRefusesSIGHUPForTheAgent: by preset or by unit name, the
// agent is never given SIGHUP, and no reload (its unit has no ExecReload).
func TestServicesRefusesSIGHUPForTheAgent(t *testing.T) {
	for _, c := range []struct{ service, want string }{
		{"preset: sensu-agent\n    action: signal\n    signal: HUP",
			"services[0] (sensu-agent): action signal HUP refused for preset sensu-agent: sensu-agent dies on SIGHUP (exit 129)"},
		{"unit: sensu-agent.service\n    action: signal\n    signal: HUP",
			"services[0] (sensu-agent): action signal HUP refused for unit sensu-agent.service: sensu-agent dies on SIGHUP (exit 129)"},
		{"unit: sensu-agent.service\n    action: reload",
			"services[0] (sensu-agent): action reload refused for unit sensu-agent.service: the packaged sensu-agent.service has no ExecReload"},
	} {
		dir := t.TempDir()
		cfg := filepath.Join(dir, "tlsd.yml")
		if err := os.WriteFile(cfg, []byte("state-dir: "+dir+"\nservices:\n  - name: sensu-agent\n    "+c.service+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		r := run(t, dir, nil, "--config", cfg, "services", "list")
		if r.code != 1 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%q: exit %d\n%s", c.service, r.code, r.stderr)
		}
	}
}

// TestServicesWarnsAboutAServiceWithoutHealth: a generic service with no
// health block works, but loading it says nothing would verify it.
func TestServicesWarnsAboutAServiceWithoutHealth(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "tlsd.yml")
	if err := os.WriteFile(cfg, []byte(`state-dir: `+dir+`
services:
  - name: blind
    action: command
    command: ["true"]
`), 0o644); err != nil {
		t.Fatal(err)
	}
	r := mustRun(t, dir, nil, "--config", cfg, "services", "act", "blind")
	for _, want := range []string{
		`level=WARN msg="service has no health check: an action is not verified and a certificate it cannot use is not rolled back" service=blind fix="add health.url, health.tls or health.tcp to services[0]"`,
		`msg="action done; no health check configured, so nothing verified it" service=blind`,
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %s:\n%s", want, r.stderr)
		}
	}
	if r.stdout != "OK blind\n" {
		t.Fatalf("stdout %q", r.stdout)
	}
}
