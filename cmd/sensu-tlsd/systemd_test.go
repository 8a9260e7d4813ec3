package main

import (
	"crypto/tls"
	"encoding/hex"
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

// tlsdSystem is a booted test systemd with a fixture directory under the
// namespace's /run, the one place both the stand-in and a sensu-tlsd
// sandboxed by the shipped unit (PrivateTmp=yes hides /tmp) can see.
type tlsdSystem struct {
	sys *systemdtest.System
	// in is the fixture directory as units see it, host as the test does.
	in, host string
}

func bootTLSDSystem(t *testing.T) *tlsdSystem {
	t.Helper()
	sys := systemdtest.Boot(t)
	s := &tlsdSystem{sys: sys, in: "/run/sensu-tlsd-test"}
	s.host = sys.Path(s.in)
	if err := os.MkdirAll(s.host, 0o755); err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(binPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.host, "sensu-tlsd"), bin, 0o755); err != nil {
		t.Fatal(err)
	}
	return s
}

// inside turns a host-side fixture path into the path units use.
func (s *tlsdSystem) inside(hostPath string) string {
	return s.in + strings.TrimPrefix(hostPath, s.host)
}

// installShippedUnit installs systemd/sensu-tlsd.service unchanged, plus a
// drop-in with the test's changes only: no default dependencies (the test
// systemd masks them), the binary and arguments, and no StateDirectory
// (it would create /var/lib/sensu-tlsd on the host's disk).
func (s *tlsdSystem) installShippedUnit(t *testing.T, serviceOverrides string) {
	t.Helper()
	unit, err := os.ReadFile(filepath.Join("..", "..", "systemd", "sensu-tlsd.service"))
	if err != nil {
		t.Fatal(err)
	}
	s.sys.InstallUnit("sensu-tlsd.service", string(unit))
	s.sys.InstallDropIn("sensu-tlsd.service", "test", fmt.Sprintf(`[Unit]
DefaultDependencies=no

[Service]
StateDirectory=
StandardOutput=append:%s/tlsd.log
StandardError=inherit
%s`, s.in, serviceOverrides))
}

// TestShippedUnitRestartsBackendFromInsideItsSandbox runs sensu-tlsd under
// the hardened sensu-tlsd.service in a real systemd and has it restart the
// stand-in backend over D-Bus and verify the new serial over TLS: proof that
// the sandbox (ProtectSystem=strict, RestrictAddressFamilies, the system
// call filter, the capability set) leaves room for the job.
func TestShippedUnitRestartsBackendFromInsideItsSandbox(t *testing.T) {
	s := bootTLSDSystem(t)
	ca := testca.New(t)
	hostSet := ca.WriteSet(t, s.host, "backend", "backend-1")
	apiPort, agentPort := testpeer.FreePort(t), testpeer.FreePort(t)
	in := testca.Set{CertFile: s.inside(hostSet.CertFile), KeyFile: s.inside(hostSet.KeyFile), CAFile: s.inside(hostSet.CAFile)}
	standintest.BackendYML(t, filepath.Join(s.host, "backend.yml"), in, apiPort, agentPort)
	s.sys.InstallUnit("sensu-backend.service", standintest.Unit(t, s.in+"/backend.yml", s.in+"/standin.log"))
	s.sys.Systemctl("start", "sensu-backend.service")
	testpeer.WaitTCP(t, fmt.Sprintf("127.0.0.1:%d", agentPort))
	pidBefore := s.sys.Property("sensu-backend.service", "MainPID")

	if err := os.WriteFile(filepath.Join(s.host, "tlsd.yml"), []byte(fmt.Sprintf(`state-dir: %[1]s/state
sensu:
  backend-config: %[1]s/backend.yml
certificates:
  - name: backend
    profile: backend
    hosts: [127.0.0.1, localhost]
    cert-file: %[2]s
    key-file: %[3]s
    ca-file: %[4]s
    services: [sensu-backend]
services:
  - name: sensu-backend
    preset: sensu-backend
    health:
      timeout: 20s
`, s.in, in.CertFile, in.KeyFile, in.CAFile)), 0o644); err != nil {
		t.Fatal(err)
	}
	// A oneshot `services act` stands in for the daemon's rotation: the
	// same dispatcher, D-Bus job and health gate, from inside the sandbox.
	s.installShippedUnit(t, fmt.Sprintf(`Type=oneshot
ExecStart=
ExecStart=%[1]s/sensu-tlsd --config %[1]s/tlsd.yml services act sensu-backend
WatchdogSec=0
`, s.in))

	renewed := ca.WriteSet(t, s.host, "backend", "backend-2")
	start := time.Now()
	if out, code := s.sys.SystemctlStatus("start", "sensu-tlsd.service"); code != 0 {
		log, _ := os.ReadFile(filepath.Join(s.host, "tlsd.log"))
		t.Fatalf("sensu-tlsd.service failed (%d): %s\n%s\n%s", code, out, s.sys.Property("sensu-tlsd.service", "Result"), log)
	}
	t.Logf("sensu-tlsd restarted the backend from its sandbox in %s", time.Since(start).Round(time.Millisecond))
	if pidAfter := s.sys.Property("sensu-backend.service", "MainPID"); pidAfter == pidBefore || pidAfter == "0" {
		t.Fatalf("backend MainPID %s → %s: not restarted", pidBefore, pidAfter)
	}
	for _, port := range []int{apiPort, agentPort} {
		if got := servedSerial(t, port); got != renewed.Serial {
			t.Fatalf("port %d serves %s, want the renewed %s", port, got, renewed.Serial)
		}
	}
}

// servedSerial is the hex serial of the leaf a TLS server on loopback
// presents.
func servedSerial(t *testing.T, port int) string {
	t.Helper()
	conn, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port), &tls.Config{InsecureSkipVerify: true}) // only the serial matters here
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return hex.EncodeToString(conn.ConnectionState().PeerCertificates[0].SerialNumber.Bytes())
}

// TestShippedUnitReadyReloadAndWatchdog runs `sensu-tlsd run` under the
// shipped Type=notify unit in a real systemd: `systemctl start` returns
// once sensu-tlsd sent READY, it issues its certificate from inside the
// sandbox, `systemctl
// reload` keeps the same process, and a hung daemon (SIGSTOP) misses its
// watchdog pings and is restarted by systemd.
func TestShippedUnitReadyReloadAndWatchdog(t *testing.T) {
	s := bootTLSDSystem(t)
	metrics := testpeer.FreePort(t)
	if err := os.WriteFile(filepath.Join(s.host, "tlsd.yml"), []byte(fmt.Sprintf(`state-dir: %[1]s/state
metrics-address: 127.0.0.1:%[2]d
ca:
  dir: %[1]s/ca
  create: true
defaults:
  dir: %[1]s/tls
  lifetime: 1h
certificates:
  - name: backend-1
    profile: backend
    hosts: [localhost, 127.0.0.1]
`, s.in, metrics)), 0o644); err != nil {
		t.Fatal(err)
	}
	// The test's only additions: a writable fixture directory instead of
	// /etc/sensu and /var/lib/sensu-tlsd, and a watchdog short enough to
	// wait for.
	s.installShippedUnit(t, fmt.Sprintf(`ExecStart=
ExecStart=%[1]s/sensu-tlsd --config %[1]s/tlsd.yml run
ReadWritePaths=%[1]s
WatchdogSec=2s
RestartSec=100ms
`, s.in))

	start := time.Now()
	if out, code := s.sys.SystemctlStatus("start", "sensu-tlsd.service"); code != 0 {
		log, _ := os.ReadFile(filepath.Join(s.host, "tlsd.log"))
		t.Fatalf("start failed (%d): %s\n%s", code, out, log)
	}
	t.Logf("sensu-tlsd reached READY under systemd in %s", time.Since(start).Round(time.Millisecond))
	if state := s.sys.Property("sensu-tlsd.service", "SubState"); state != "running" {
		t.Fatalf("SubState %s after start", state)
	}
	// Issuing inside the sandbox proves ReadWritePaths and the system call
	// filter leave room for installing files.
	certFile := filepath.Join(s.host, "tls", "backend-1.pem")
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		// Lstat: the installed file is a symlink whose absolute target
		// only resolves inside the namespace.
		if _, err := os.Lstat(certFile); err == nil {
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(s.host, "tlsd.log"))
			t.Fatalf("no certificate issued from inside the sandbox\n%s", log)
		}
	}

	pid := s.sys.Property("sensu-tlsd.service", "MainPID")
	s.sys.Systemctl("reload", "sensu-tlsd.service")
	time.Sleep(500 * time.Millisecond)
	if after := s.sys.Property("sensu-tlsd.service", "MainPID"); after != pid || s.sys.Property("sensu-tlsd.service", "ActiveState") != "active" {
		t.Fatalf("after reload: MainPID %s → %s, %s", pid, after, s.sys.Property("sensu-tlsd.service", "ActiveState"))
	}

	s.sys.Systemctl("kill", "--kill-whom=main", "--signal=SIGSTOP", "sensu-tlsd.service")
	deadline := time.Now().Add(30 * time.Second)
	for {
		if s.sys.Property("sensu-tlsd.service", "NRestarts") == "1" && s.sys.Property("sensu-tlsd.service", "SubState") == "running" {
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(s.host, "tlsd.log"))
			t.Fatalf("the hung daemon was not restarted: NRestarts=%s SubState=%s\n%s", s.sys.Property("sensu-tlsd.service", "NRestarts"),
				s.sys.Property("sensu-tlsd.service", "SubState"), log)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if after := s.sys.Property("sensu-tlsd.service", "MainPID"); after == pid {
		t.Fatal("restarted with the same MainPID")
	}
	t.Logf("watchdog restarted the hung sensu-tlsd after %s", time.Since(deadline.Add(-30*time.Second)).Round(time.Millisecond))
}
