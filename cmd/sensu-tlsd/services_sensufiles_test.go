package main

import (
	"fmt"
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

// backendFilesConfig is a daemon config with one local-ca certificate,
// backend, that names the sensu-backend preset service, whose files are
// backend.yml and the environment files envFiles.
func backendFilesConfig(t *testing.T, dir, yml, systemdAddress string, envFiles ...string) string {
	t.Helper()
	env := ""
	if len(envFiles) > 0 {
		env = "\n  backend-env-files: [" + strings.Join(envFiles, ", ") + "]"
	}
	cfg := filepath.Join(dir, "tlsd.yml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`state-dir: %[1]s/state
metrics-address: 127.0.0.1:0
ca:
  dir: %[1]s/ca
  create: true
defaults:
  dir: %[1]s/tls
  lifetime: 1h
sensu:
  backend-config: %[2]s%[4]s
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
      timeout: 5s
      interval: 50ms
`, dir, yml, systemdAddress, env)), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// renewBackend renews the certificate backend in another process, as an
// operator would, and returns the new serial once the daemon announced it.
func renewBackend(t *testing.T, d *daemonProc, dir, cfg, certFile string) string {
	t.Helper()
	mustRun(t, dir, nil, "renew", "backend", "--force", "--config", cfg)
	serial := daemonSerial(t, certFile)
	d.waitLog(`msg="certificate changed" name=backend .*new_serial=0*`+strings.TrimLeft(serial, "0"), 10*time.Second)
	return serial
}

// TestBackendWithCertFileTwiceIsGatedOnItsOwnPorts: a backend.yml that
// sets cert-file twice is read as sensu-backend reads it, the last one
// counting. The renewal restarts the stand-in sensu-backend, which listens
// on ports other than 8080 and 8081, the health gate probes those ports
// and sees the new serial, and nothing is rolled back. (Read as a plain
// YAML map, the file was refused and the gate probed 8080 and 8081, failed,
// and rolled the renewal back.)
func TestBackendWithCertFileTwiceIsGatedOnItsOwnPorts(t *testing.T) {
	testpeer.NeedPeer(t, testpeer.HasProgram("openssl"), "openssl reads serials")
	sys := systemdtest.Boot(t)
	dir := t.TempDir()
	tlsDir := filepath.Join(dir, "tls")
	apiPort, agentPort := testpeer.FreePort(t), testpeer.FreePort(t)
	yml := filepath.Join(dir, "backend.yml")
	if err := os.WriteFile(yml, []byte(fmt.Sprintf(`cert-file: %[1]s/old/backend.pem
key-file: %[1]s/backend-key.pem
trusted-ca-file: %[1]s/ca.pem
api-listen-address: 127.0.0.1:%[2]d
agent-host: 127.0.0.1
agent-port: %[3]d
cert-file: %[1]s/backend.pem
`, tlsDir, apiPort, agentPort)), 0o644); err != nil {
		t.Fatal(err)
	}
	sys.InstallUnit("sensu-backend.service", standintest.Unit(t, yml, filepath.Join(dir, "standin.log")))
	cfg := backendFilesConfig(t, dir, yml, sys.PrivateSocket())
	d := daemonStart(t, dir, cfg)
	d.waitLog(`msg="action left the service alone".*only-if-running`, 20*time.Second)
	sys.Systemctl("start", "sensu-backend.service")
	testpeer.WaitTCP(t, fmt.Sprintf("127.0.0.1:%d", agentPort))

	renewed := renewBackend(t, d, dir, cfg, filepath.Join(tlsDir, "backend.pem"))
	d.waitLog(`msg=acting service=sensu-backend .*reason="cert-file, key-file changed \(set in `+yml+`\)`, 5*time.Second)
	line := d.waitLog(`msg="service healthy" service=sensu-backend|msg="service did not come back healthy"`, 20*time.Second)
	if !strings.Contains(line, "service healthy") || !sameHex(serialField(line), renewed) {
		t.Fatalf("the gate did not pass on the renewed serial %s:\n%s", renewed, line)
	}
	d.noLog(`rolled back`, time.Second)
	for _, port := range []int{apiPort, agentPort} {
		if got := servedSerial(t, port); !sameHex(got, renewed) {
			t.Fatalf("port %d serves %s, want the renewed %s", port, got, renewed)
		}
	}
}

// serialField is the serials= value of a log line.
func serialField(line string) string {
	_, after, _ := strings.Cut(line, "serials=")
	return strings.Fields(after + " ")[0]
}

// TestRenewalRestartsTheBackendOnlyWhenItReadsTheCertificate: at the
// cutover's first phases backend.yml names no certificate (sensu-tlsd's
// proxy serves it), so a renewal leaves sensu-backend running, and the log
// says why. Once the unit's environment file names the certificate
// (SENSU_BACKEND_CERT_FILE...), the next renewal restarts sensu-backend,
// which then serves the renewed serial.
func TestRenewalRestartsTheBackendOnlyWhenItReadsTheCertificate(t *testing.T) {
	testpeer.NeedPeer(t, testpeer.HasProgram("openssl"), "openssl reads serials")
	sys := systemdtest.Boot(t)
	dir := t.TempDir()
	tlsDir := filepath.Join(dir, "tls")
	apiPort, agentPort := testpeer.FreePort(t), testpeer.FreePort(t)
	yml, env := filepath.Join(dir, "backend.yml"), filepath.Join(dir, "sensu-backend")
	standintest.BackendYML(t, yml, testca.Set{}, apiPort, agentPort)
	unit := strings.Replace(standintest.Unit(t, yml, filepath.Join(dir, "standin.log")), "[Service]\n", "[Service]\nEnvironmentFile=-"+env+"\n", 1)
	sys.InstallUnit("sensu-backend.service", unit)
	cfg := backendFilesConfig(t, dir, yml, sys.PrivateSocket(), env)
	d := daemonStart(t, dir, cfg)
	certFile := filepath.Join(tlsDir, "backend.pem")
	d.waitLog(`msg="no action needed" service=sensu-backend`, 20*time.Second)
	sys.Systemctl("start", "sensu-backend.service")
	testpeer.WaitTCP(t, fmt.Sprintf("127.0.0.1:%d", agentPort))
	pid := sys.Property("sensu-backend.service", "MainPID")

	renewBackend(t, d, dir, cfg, certFile)
	d.waitLog(`msg="no action needed" service=sensu-backend .*reason="sensu-backend does not read `+certFile, 5*time.Second)
	d.noLog(`msg=acting`, time.Second)
	if now := sys.Property("sensu-backend.service", "MainPID"); now != pid {
		t.Fatalf("sensu-backend restarted (MainPID %s → %s) for a certificate it does not read", pid, now)
	}

	// The operator turns TLS on through the environment file and restarts
	// the backend; the next renewal must reach it.
	if err := os.WriteFile(env, []byte(fmt.Sprintf("SENSU_BACKEND_CERT_FILE=%[1]s/backend.pem\nSENSU_BACKEND_KEY_FILE=%[1]s/backend-key.pem\nSENSU_BACKEND_TRUSTED_CA_FILE=%[1]s/ca.pem\n", tlsDir)), 0o644); err != nil {
		t.Fatal(err)
	}
	sys.Systemctl("restart", "sensu-backend.service")
	testpeer.WaitTCP(t, fmt.Sprintf("127.0.0.1:%d", agentPort))
	pid = sys.Property("sensu-backend.service", "MainPID")
	renewed := renewBackend(t, d, dir, cfg, certFile)
	d.waitLog(`msg=acting service=sensu-backend .*reason="cert-file, key-file changed \(set in `+env+` SENSU_BACKEND_CERT_FILE`, 5*time.Second)
	line := d.waitLog(`msg="service healthy" service=sensu-backend|msg="service did not come back healthy"`, 20*time.Second)
	if !strings.Contains(line, "service healthy") || !sameHex(serialField(line), renewed) {
		t.Fatalf("the gate did not pass on the renewed serial %s:\n%s", renewed, line)
	}
	if now := sys.Property("sensu-backend.service", "MainPID"); now == pid || now == "0" {
		t.Fatalf("sensu-backend MainPID %s → %s: not restarted for a certificate its environment file names", pid, now)
	}
	if got := servedSerial(t, apiPort); !sameHex(got, renewed) {
		t.Fatalf("the backend serves %s, want the renewed %s", got, renewed)
	}
}
