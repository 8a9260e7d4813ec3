package main

import (
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/internal/standintest"
	"github.com/sensu-tlsd/sensu-tlsd/internal/testca"
	"github.com/sensu-tlsd/sensu-tlsd/internal/testpeer"
)

// TestShippedUnitRenewsAndRestartsTheBackend is the rotation in one piece
// under a real systemd: `sensu-tlsd run` under the shipped unit issues a
// short-lived local-ca certificate, renews it, restarts the stand-in
// sensu-backend.service through a D-Bus job from inside its sandbox, and
// the stand-in then serves the new serial on its API and agent ports.
func TestShippedUnitRenewsAndRestartsTheBackend(t *testing.T) {
	s := bootTLSDSystem(t)
	apiPort, agentPort, metrics := testpeer.FreePort(t), testpeer.FreePort(t), testpeer.FreePort(t)
	tls := s.in + "/tls"
	backend := testca.Set{CertFile: tls + "/backend.pem", KeyFile: tls + "/backend-key.pem", CAFile: tls + "/ca.pem"}
	standintest.BackendYML(t, filepath.Join(s.host, "backend.yml"), backend, apiPort, agentPort)
	s.sys.InstallUnit("sensu-backend.service", standintest.Unit(t, s.in+"/backend.yml", s.in+"/standin.log"))
	// Renewed 12s after issue: time to start the backend on the first
	// certificate, short enough to wait for.
	if err := os.WriteFile(filepath.Join(s.host, "tlsd.yml"), []byte(fmt.Sprintf(`state-dir: %[1]s/state
metrics-address: 127.0.0.1:%[2]d
renewal:
  before: 28s
  jitter: 0s
ca:
  dir: %[1]s/ca
  create: true
defaults:
  dir: %[1]s/tls
  lifetime: 40s
sensu:
  backend-config: %[1]s/backend.yml
service-actions:
  coalesce: 200ms
certificates:
  - name: backend
    profile: backend
    hosts: [localhost, 127.0.0.1]
    services: [sensu-backend]
services:
  - name: sensu-backend
    preset: sensu-backend
    health:
      timeout: 20s
`, s.in, metrics)), 0o644); err != nil {
		t.Fatal(err)
	}
	s.installShippedUnit(t, fmt.Sprintf(`ExecStart=
ExecStart=%[1]s/sensu-tlsd --config %[1]s/tlsd.yml run
ReadWritePaths=%[1]s
`, s.in))
	log := &unitLog{t: t, path: filepath.Join(s.host, "tlsd.log")}

	if out, code := s.sys.SystemctlStatus("start", "sensu-tlsd.service"); code != 0 {
		t.Fatalf("start failed (%d): %s\n%s", code, out, log.text())
	}
	// The first certificate finds the backend stopped: only-if-running
	// leaves it alone, and the operator starts it.
	log.wait(`msg="action left the service alone" .*sensu-backend.service is inactive`, 20*time.Second)
	s.sys.Systemctl("start", "sensu-backend.service")
	testpeer.WaitTCP(t, fmt.Sprintf("127.0.0.1:%d", agentPort))
	first := servedSerial(t, apiPort)
	pidBefore := s.sys.Property("sensu-backend.service", "MainPID")

	renewal := log.wait(`msg="certificate changed" name=backend reason=renewal `, 40*time.Second)
	m := regexp.MustCompile(`old_serial=(\S+) new_serial=(\S+)`).FindStringSubmatch(renewal)
	if m == nil || !sameHex(m[1], first) {
		t.Fatalf("renewal does not replace the served serial %s:\n%s", first, renewal)
	}
	renewed := m[2]
	log.wait(`msg="service healthy" service=sensu-backend certificates=backend detail="restart sensu-backend.service: job done" serials=`+renewed, 30*time.Second)

	// A restart job, not systemd's Restart=: the unit has none, and the
	// counter of automatic restarts stays 0.
	if pid := s.sys.Property("sensu-backend.service", "MainPID"); pid == pidBefore || pid == "0" {
		t.Fatalf("backend MainPID %s → %s: not restarted", pidBefore, pid)
	}
	if n := s.sys.Property("sensu-backend.service", "NRestarts"); n != "0" {
		t.Fatalf("backend NRestarts=%s", n)
	}
	for _, port := range []int{apiPort, agentPort} {
		if got := servedSerial(t, port); !sameHex(got, renewed) {
			t.Fatalf("port %d serves %s after the renewal, want %s", port, got, renewed)
		}
	}
	s.sys.Systemctl("stop", "sensu-tlsd.service")
	if res := s.sys.Property("sensu-tlsd.service", "Result"); res != "success" {
		t.Fatalf("sensu-tlsd.service stopped with result %s\n%s", res, log.text())
	}
}

// sameHex compares two hex serials however they are printed.
func sameHex(a, b string) bool {
	x, okA := new(big.Int).SetString(a, 16)
	y, okB := new(big.Int).SetString(b, 16)
	return okA && okB && x.Cmp(y) == 0
}

// unitLog follows a log file a unit appends to, like daemonProc's log.
type unitLog struct {
	t    *testing.T
	path string
	seen int // lines consumed by wait
}

func (l *unitLog) text() string {
	b, _ := os.ReadFile(l.path)
	return string(b)
}

// wait returns the next line, after those already matched, that matches
// pattern.
func (l *unitLog) wait(pattern string, within time.Duration) string {
	l.t.Helper()
	re := regexp.MustCompile(pattern)
	for deadline := time.Now().Add(within); ; time.Sleep(50 * time.Millisecond) {
		lines := strings.Split(l.text(), "\n")
		for i := l.seen; i < len(lines)-1; i++ { // the last is not complete yet
			if re.MatchString(lines[i]) {
				l.seen = i + 1
				return lines[i]
			}
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("%s: no line matching %q within %s\n%s", l.path, pattern, within, l.text())
		}
	}
}
