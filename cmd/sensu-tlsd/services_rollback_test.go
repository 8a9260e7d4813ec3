package main

import (
	"encoding/json"
	"fmt"
	"io"
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

// TestDaemonRollsBackACertificateTheBackendCannotStartWith is the whole
// chain: `sensu-tlsd run` follows a certificate an operator moved in place,
// restarts the stand-in sensu-backend.service through a D-Bus job in a real
// systemd, the stand-in refuses that certificate, the health gate fails, the
// daemon re-installs the previous generation and the rollback change
// restarts the backend on the old serial, once: no retry loop, and no new
// certificate of its own once retry-min has passed. status names the
// refused serial.
func TestDaemonRollsBackACertificateTheBackendCannotStartWith(t *testing.T) {
	testpeer.NeedPeer(t, testpeer.HasProgram("openssl"), "openssl reads serials")
	sys := systemdtest.Boot(t)
	dir := t.TempDir()
	tlsDir := filepath.Join(dir, "tls")
	apiPort, agentPort := testpeer.FreePort(t), testpeer.FreePort(t)
	yml := filepath.Join(dir, "backend.yml")
	backend := testca.Set{CertFile: filepath.Join(tlsDir, "backend.pem"), KeyFile: filepath.Join(tlsDir, "backend-key.pem"), CAFile: filepath.Join(tlsDir, "ca.pem")}
	standintest.BackendYML(t, yml, backend, apiPort, agentPort)
	unit := func(failSerial string) {
		sys.InstallUnit("sensu-backend.service", standintest.Unit(t, yml, filepath.Join(dir, "standin.log"), "--fail-if-serial", failSerial))
	}
	unit("none")

	cfg := filepath.Join(dir, "tlsd.yml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`state-dir: %[1]s/state
metrics-address: 127.0.0.1:0
renewal:
  retry-min: 1s
  retry-max: 2s
ca:
  dir: %[1]s/ca
  create: true
defaults:
  dir: %[1]s/tls
  lifetime: 1h
sensu:
  backend-config: %[2]s
service-actions:
  coalesce: 100ms
  systemd-address: %[3]s
certificates:
  - name: backend
    profile: backend
    hosts: [localhost, 127.0.0.1]
    services: [sensu-backend]
services:
  - name: sensu-backend
    preset: sensu-backend
    health:
      timeout: 3s
      interval: 50ms
`, dir, yml, sys.PrivateSocket())), 0o644); err != nil {
		t.Fatal(err)
	}
	d := daemonStart(t, dir, cfg)
	// The unit is not running yet: only-if-running leaves it alone.
	d.waitLog(`msg="action left the service alone".*only-if-running`, 20*time.Second)
	sys.Systemctl("start", "sensu-backend.service")
	testpeer.WaitTCP(t, fmt.Sprintf("127.0.0.1:%d", agentPort))
	good := daemonSerial(t, backend.CertFile)

	// The operator's certificate, which this backend refuses to start with.
	out := filepath.Join(dir, "operator")
	mustRun(t, dir, nil, "issue", "backend", "--profile", "backend", "--common-name", "backend-bad",
		"--hosts", "localhost,127.0.0.1", "--ca-dir", filepath.Join(dir, "ca"), "--out", out, "--lifetime", "1h")
	bad := daemonSerial(t, filepath.Join(out, "backend.pem"))
	unit(bad)
	for _, f := range [][2]string{{"backend-key.pem", backend.KeyFile}, {"backend.pem", backend.CertFile}} {
		if err := os.Rename(filepath.Join(out, f[0]), f[1]); err != nil {
			t.Fatal(err)
		}
	}

	// The daemon follows the operator's set, the service refuses it (a
	// consumer failure), and the daemon rolls back: metrics count both.
	d.waitMetric(renewalFailures("backend", "consumer"), 1, 15*time.Second)
	d.waitMetric(renewals("backend", "rollback"), 1, 10*time.Second)
	// openssl prints serials with a leading zero where the log does not.
	d.waitLog(`msg="service healthy".*serials=0*`+strings.TrimLeft(good, "0"), 10*time.Second)
	if got := daemonSerial(t, backend.CertFile); got != good {
		t.Fatalf("cert on disk %s after the rollback, want %s", got, good)
	}
	if got := servedSerial(t, apiPort); !strings.EqualFold(got, good) {
		t.Fatalf("backend serves %s after the rollback, want %s", got, good)
	}
	if state := sys.Property("sensu-backend.service", "ActiveState"); state != "active" {
		t.Fatalf("sensu-backend.service is %s after the rollback", state)
	}
	// Reported once; the bad certificate is not tried again, and no
	// certificate replaces the operator's: nothing changes and nothing
	// restarts well past retry-min.
	d.noLog(`msg="certificate changed"|msg=acting`, 5*time.Second)
	r := run(t, dir, nil, "status", "--config", cfg)
	if r.code != 1 || !strings.Contains(r.stdout, "backend: consumers rejected serial "+bad+" (reason consumer") {
		t.Fatalf("status after the rollback (exit %d) does not name the rejected serial %s and the reason:\n%s%s", r.code, bad, r.stdout, r.stderr)
	}
	r = run(t, dir, nil, "status", "--config", cfg, "--json")
	var report struct {
		Certificates []struct {
			Name    string `json:"name"`
			Renewal struct {
				Reason         string `json:"reason"`
				RejectedSerial string `json:"rejected_serial"`
				Serial         string `json:"serial"`
			} `json:"renewal"`
		} `json:"certificates"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &report); err != nil {
		t.Fatalf("status --json: %v\n%s", err, r.stdout)
	}
	// The backend's row comes first; the CA rows after it carry no renewal.
	if len(report.Certificates) == 0 || report.Certificates[0].Name != "backend" || report.Certificates[0].Renewal.Reason != "consumer" ||
		report.Certificates[0].Renewal.RejectedSerial != bad || report.Certificates[0].Renewal.Serial != good {
		t.Fatalf("status --json after the rollback: %+v", report)
	}
	resp, err := http.Get("http://" + d.metricsAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`sensu_tlsd_service_actions_total{kind="change",result="unhealthy",service="sensu-backend"} 1`,
		`sensu_tlsd_service_actions_total{kind="rollback",result="ok",service="sensu-backend"} 1`,
		`sensu_tlsd_service_health_failures_total{kind="change",service="sensu-backend"} 1`,
		`sensu_tlsd_renewal_failures_total{name="backend",reason="consumer"} 1`,
		`sensu_tlsd_certificate_consumer_rejected{name="backend"} 1`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}
