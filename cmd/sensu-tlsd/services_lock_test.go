package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestServicesActWaitsForTheDaemon: `sensu-tlsd services act` and a
// running daemon share a lock per service in the state directory, so an
// operator's action waits for the daemon's instead of overlapping it.
func TestServicesActWaitsForTheDaemon(t *testing.T) {
	dir := t.TempDir()
	// The health check only needs something listening (the kernel accepts).
	up, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { up.Close() })
	busy, runs := filepath.Join(dir, "busy"), filepath.Join(dir, "runs")
	// The action fails (exit 9) if another run of it is in progress.
	cfg := filepath.Join(dir, "tlsd.yml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`state-dir: %[1]s/state
metrics-address: 127.0.0.1:0
ca:
  dir: %[1]s/ca
  create: true
defaults:
  dir: %[1]s/tls
  lifetime: 1h
service-actions:
  coalesce: 10ms
certificates:
  - name: web
    profile: server
    hosts: [localhost]
    services: [web]
services:
  - name: web
    action: command
    command: [sh, -c, 'mkdir "$0" || exit 9; echo "reason=$SENSU_TLSD_REASONS" >> "$1"; sleep 1.5; rmdir "$0"', %[2]s, %[3]s]
    health:
      tcp: %[4]s
`, dir, busy, runs, up.Addr())), 0o644); err != nil {
		t.Fatal(err)
	}
	d := daemonStart(t, dir, cfg)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(busy); err == nil {
			break // the daemon's action for the first certificate runs
		}
		select {
		case <-d.done:
			t.Fatal("the daemon exited")
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the daemon's action never started")
		}
	}
	r := mustRun(t, dir, nil, "--config", cfg, "services", "act", "web")
	if !strings.Contains(r.stderr, `msg="waiting for another sensu-tlsd process acting on this service" service=web lock=`+filepath.Join(dir, "state", "services", "web.lock")) {
		t.Fatalf("services act did not wait for the daemon:\n%s", r.stderr)
	}
	d.waitLog(`msg="service healthy" service=web certificates=web`, 10*time.Second)
	b, err := os.ReadFile(runs)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Fields(string(b)); strings.Join(got, " ") != "reason=initial reason=" {
		t.Fatalf("runs %q: want the daemon's, then the operator's", got)
	}
}
