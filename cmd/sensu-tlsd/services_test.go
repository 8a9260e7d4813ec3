package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sensu-tlsd/sensu-tlsd/systemd/systemdtest"
)

// TestServicesCheckCatchesAMissedRestart runs the stand-in backend as a
// real process and drives `sensu-tlsd services`: list shows the preset's
// action, check passes while the backend serves the installed certificate
// and fails with exit 2, naming the served serial, once the files on disk
// changed without a restart.
func TestServicesCheckCatchesAMissedRestart(t *testing.T) {
	dir := t.TempDir()
	ca := systemdtest.NewCA(t)
	set := ca.WriteSet(t, dir, "backend", "backend-1")
	apiPort, agentPort := systemdtest.FreePort(t), systemdtest.FreePort(t)
	yml := filepath.Join(dir, "backend.yml")
	systemdtest.BackendYML(t, yml, set, apiPort, agentPort)
	systemdtest.StartBackend(t, yml)
	systemdtest.WaitTCP(t, fmt.Sprintf("127.0.0.1:%d", agentPort))

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

	list := mustRun(t, dir, nil, "--config", cfg, "services", "list")
	if !strings.Contains(list.stdout, "sensu-backend  restart sensu-backend.service  backend") {
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

func TestServicesRefusesSIGHUPForTheAgent(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "tlsd.yml")
	if err := os.WriteFile(cfg, []byte(`state-dir: `+dir+`
services:
  - name: sensu-agent
    preset: sensu-agent
    action: signal
    signal: HUP
`), 0o644); err != nil {
		t.Fatal(err)
	}
	r := run(t, dir, nil, "--config", cfg, "services", "list")
	if r.code != 1 || !strings.Contains(r.stderr, "services[0] (sensu-agent): action signal HUP refused for preset sensu-agent: sensu-agent dies on SIGHUP (exit 129)") {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
}
