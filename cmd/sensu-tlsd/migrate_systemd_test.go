package main

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/internal/standintest"
	"github.com/sensu-tlsd/sensu-tlsd/internal/systemdtest"
	"github.com/sensu-tlsd/sensu-tlsd/internal/testca"
	"github.com/sensu-tlsd/sensu-tlsd/internal/testpeer"
)

// migrateSystem is a real systemd running a packaged-style sensu-backend
// (the stand-in, Restart=always, a start limit) and sensu-tlsd's daemon
// (Type=notify, reload by SIGHUP), with a config for both and for migrate.
type migrateSystem struct {
	sys                 *systemdtest.System
	dir, cfg, backend   string
	api, agent, metrics int
	loopAPI, loopAgent  int
}

func bootMigrateSystem(t *testing.T) *migrateSystem {
	t.Helper()
	s := &migrateSystem{sys: systemdtest.Boot(t), dir: t.TempDir()}
	s.api, s.agent, s.metrics = testpeer.FreePort(t), testpeer.FreePort(t), testpeer.FreePort(t)
	s.loopAPI, s.loopAgent = testpeer.FreePort(t), testpeer.FreePort(t)
	s.backend, s.cfg = filepath.Join(s.dir, "backend.yml"), filepath.Join(s.dir, "tlsd.yml")
	standintest.BackendYML(t, s.backend, testca.Set{}, s.api, s.agent)
	if err := os.WriteFile(s.cfg, []byte(fmt.Sprintf(`state-dir: %[1]s/state
metrics-address: 127.0.0.1:%[2]d
service-actions:
  systemd-address: %[3]s
certificates:
  - {name: backend, profile: backend, hosts: [localhost, 127.0.0.1]}
sensu:
  backend-config: %[4]s
  backend-certificate: backend
services:
  - name: sensu-backend
    preset: sensu-backend
    health:
      timeout: 20s
`, s.dir, s.metrics, s.sys.PrivateSocket(), s.backend)), 0o644); err != nil {
		t.Fatal(err)
	}
	mustRun(t, s.dir, nil, "--config", s.cfg, "ca", "init")
	mustRun(t, s.dir, nil, "--config", s.cfg, "issue", "--all")

	s.sys.InstallUnit("sensu-backend.service", standintest.Unit(t, s.backend, s.dir+"/standin.log"))
	s.sys.InstallDropIn("sensu-backend.service", "packaged", packagedBackend)
	s.sys.InstallUnit("sensu-tlsd.service", tlsdUnit(s.cfg, s.dir))
	s.sys.Systemctl("start", "sensu-backend.service")
	testpeer.WaitTCP(t, fmt.Sprintf("127.0.0.1:%d", s.api))
	if out, code := s.sys.SystemctlStatus("start", "sensu-tlsd.service"); code != 0 {
		t.Fatalf("sensu-tlsd.service: %s\n%s", out, s.log(t))
	}
	return s
}

// packagedBackend is the drop-in that makes a sensu-backend unit behave
// as packaged: restarted whenever it dies, until the start limit.
const packagedBackend = "[Unit]\nStartLimitIntervalSec=10s\nStartLimitBurst=5\n[Service]\nRestart=always\nRestartSec=100ms\n"

// tlsdUnit is sensu-tlsd's unit running the daemon on cfg (Type=notify,
// reload by SIGHUP), logging to dir/tlsd.log.
func tlsdUnit(cfg, dir string) string {
	return fmt.Sprintf(`[Unit]
DefaultDependencies=no
[Service]
Type=notify
NotifyAccess=main
ExecStart=%s --config %s run
ExecReload=/bin/kill -HUP $MAINPID
StandardOutput=append:%s/tlsd.log
StandardError=inherit
`, binPath, cfg, dir)
}

func (s *migrateSystem) log(t *testing.T) string {
	t.Helper()
	tlsd, _ := os.ReadFile(filepath.Join(s.dir, "tlsd.log"))
	backend, _ := os.ReadFile(filepath.Join(s.dir, "standin.log"))
	return "sensu-tlsd:\n" + string(tlsd) + "\nsensu-backend:\n" + string(backend)
}

func (s *migrateSystem) migrate(t *testing.T, args ...string) result {
	t.Helper()
	return run(t, s.dir, nil, append([]string{"--config", s.cfg, "migrate"}, append(args, "--user", "root")...)...)
}

// inOrder fails unless each of want appears in out after the one before.
func inOrder(t *testing.T, what, out string, want ...string) {
	t.Helper()
	rest := out
	for _, w := range want {
		i := strings.Index(rest, w)
		if i < 0 {
			t.Fatalf("%s: %q missing or out of order in:\n%s", what, w, out)
		}
		rest = rest[i+len(w):]
	}
}

func httpOK(url string) error {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return nil
}

func servesTLS(port int) error {
	c, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port), &tls.Config{InsecureSkipVerify: true}) // only whether TLS answers matters
	if err != nil {
		return err
	}
	return c.Close()
}

// TestMigrateActsInTheOrderThatKeepsPortsFree drives the cutover of a
// backend node through the built binary under a real systemd. First the
// order the old notes gave for a rollback (restart the backend, then
// reload sensu-tlsd) is shown to kill the packaged backend for good: the
// proxy still holds its port and the start limit ends the restarts. Then
// migrate does the restarts itself: into the bridge, phase 3 held back
// while an agent was seen on ws:// and forced through naming it, and back
// to phase 0 with the backend up and never restarted by systemd.
func TestMigrateActsInTheOrderThatKeepsPortsFree(t *testing.T) {
	s := bootMigrateSystem(t)
	ports := []string{"--bridge-api-port", fmt.Sprint(s.loopAPI), "--bridge-agent-port", fmt.Sprint(s.loopAgent)}
	public := fmt.Sprintf("http://127.0.0.1:%d/health", s.api)

	r := s.migrate(t, append([]string{"apply", "--phase", "1"}, ports...)...)
	if r.code != 0 {
		t.Fatalf("apply --phase 1: exit %d\n%s%s\n%s", r.code, r.stdout, r.stderr, s.log(t))
	}
	inOrder(t, "phase 1", r.stdout, "done: restart sensu-backend", "done: reload sensu-tlsd", "applied: phase 0 (plaintext) -> phase 1 (bridge)")
	if err := httpOK(fmt.Sprintf("http://127.0.0.1:%d/health", s.loopAPI)); err != nil {
		t.Fatalf("the backend on its loopback port: %v", err)
	}
	if err := servesTLS(s.api); err != nil {
		t.Fatalf("the proxy on the public API port: %v", err)
	}

	// The old notes' order: the restarted backend finds its port taken by
	// the proxy and systemd gives up on it.
	r = s.migrate(t, "rollback", "--print-only")
	inOrder(t, "rollback --print-only", r.stdout, "1. reload sensu-tlsd", "2. restart sensu-backend")
	s.sys.SystemctlStatus("restart", "sensu-backend.service")
	for deadline := time.Now().Add(15 * time.Second); s.sys.Property("sensu-backend.service", "ActiveState") != "failed"; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the backend restarted before the reload did not fail: %s\n%s", s.sys.Property("sensu-backend.service", "ActiveState"), s.log(t))
		}
	}
	if b, _ := os.ReadFile(filepath.Join(s.dir, "standin.log")); !strings.Contains(string(b), "address already in use") {
		t.Errorf("the backend failed for another reason:\n%s", b)
	}
	s.sys.Systemctl("reload", "sensu-tlsd.service")
	s.sys.Systemctl("reset-failed", "sensu-backend.service")
	s.sys.Systemctl("start", "sensu-backend.service")
	testpeer.WaitTCP(t, fmt.Sprintf("127.0.0.1:%d", s.api))

	// migrate acting: into the bridge again, then an agent on ws://.
	if r := s.migrate(t, append([]string{"apply", "--phase", "1"}, ports...)...); r.code != 0 {
		t.Fatalf("apply --phase 1 again: exit %d\n%s%s\n%s", r.code, r.stdout, r.stderr, s.log(t))
	}
	agent, err := proxyDialAgent(t, fmt.Sprintf("ws://127.0.0.1:%d", s.agent), "web-1", nil)
	if err != nil {
		t.Fatalf("a ws:// agent through the bridge: %v\n%s", err, s.log(t))
	}
	agent.close()

	plan := s.migrate(t, "plan")
	if plan.code != 1 || !strings.Contains(plan.stdout, "REFUSED: phase 3 (native) ends ws:// on this backend, but 1 agent(s) were seen in plaintext: default/web-1 (last seen ") {
		t.Errorf("plan with an agent on ws://: exit %d\n%s%s", plan.code, plan.stdout, plan.stderr)
	}
	before, _ := os.ReadFile(s.backend)
	r = s.migrate(t, "apply", "--phase", "3")
	if r.code == 0 || !strings.Contains(r.stderr, "default/web-1 (last seen ") || !strings.Contains(r.stderr, "--force to cut them off") {
		t.Fatalf("phase 3 with an agent on ws://: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if after, _ := os.ReadFile(s.backend); string(after) != string(before) {
		t.Fatal("the refused phase 3 changed backend.yml")
	}
	r = s.migrate(t, "apply", "--phase", "3", "--force")
	if r.code != 0 {
		t.Fatalf("apply --phase 3 --force: exit %d\n%s%s\n%s", r.code, r.stdout, r.stderr, s.log(t))
	}
	t.Logf("migrate apply --phase 3 --force:\n%s", r.stdout)
	inOrder(t, "phase 3", r.stdout, "--force: cutting off 1 agent(s) seen in plaintext: default/web-1 (last seen ",
		"done: reload sensu-tlsd", "done: restart sensu-backend", "applied: phase 1 (bridge) -> phase 3 (native)")
	if err := servesTLS(s.api); err != nil {
		t.Fatalf("the backend serving TLS itself: %v", err)
	}
	if _, err := proxyDialAgent(t, fmt.Sprintf("ws://127.0.0.1:%d", s.agent), "web-1", nil); err == nil {
		t.Error("a ws:// agent still connects after phase 3")
	}

	// Back: 3 → 1 (the backend leaves the public ports first), 1 → 0
	// (the proxy lets them go first).
	r = s.migrate(t, "rollback")
	if r.code != 0 {
		t.Fatalf("rollback from 3: exit %d\n%s%s\n%s", r.code, r.stdout, r.stderr, s.log(t))
	}
	inOrder(t, "rollback 3 → 1", r.stdout, "done: restart sensu-backend", "done: reload sensu-tlsd", "rolled back: phase 3 (native) -> phase 1 (bridge)")
	restarts := s.sys.Property("sensu-backend.service", "NRestarts")
	r = s.migrate(t, "rollback")
	if r.code != 0 {
		t.Fatalf("rollback from 1: exit %d\n%s%s\n%s", r.code, r.stdout, r.stderr, s.log(t))
	}
	t.Logf("migrate rollback 1 → 0:\n%s", r.stdout)
	inOrder(t, "rollback 1 → 0", r.stdout, "done: reload sensu-tlsd", "done: restart sensu-backend", "rolled back: phase 1 (bridge) -> phase 0 (plaintext)")
	if state := s.sys.Property("sensu-backend.service", "ActiveState"); state != "active" {
		t.Fatalf("the backend after the rollback: %s\n%s", state, s.log(t))
	}
	if n := s.sys.Property("sensu-backend.service", "NRestarts"); n != restarts {
		t.Errorf("systemd restarted the crashed backend %s times (was %s): it could not bind its port", n, restarts)
	}
	if err := httpOK(public); err != nil {
		t.Errorf("the backend on its public port after the rollback: %v", err)
	}
}
