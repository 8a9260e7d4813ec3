package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/internal/testpeer"
)

// sensuconfRegenConfig writes a daemon config that manages the Sensu files
// (sensu.manage) for certificate "backend" kept in tlsDir, with a command
// service that records SENSU_TLSD_FILES of every change in acted.
func sensuconfRegenConfig(t *testing.T, dir, tlsDir, backend, agent, acted string) string {
	t.Helper()
	cfg := filepath.Join(dir, "tlsd.yml")
	conf := fmt.Sprintf(`state-dir: %[1]s/state
metrics-address: 127.0.0.1:0
renewal:
  before: 33%%
  jitter: 0s
  retry-min: 1s
  retry-max: 2s
ca:
  dir: %[1]s/ca
  create: true
defaults:
  dir: %[2]s
  lifetime: 1h
certificates:
  - name: backend
    profile: backend
    hosts: [localhost, 127.0.0.1]
    services: [sensu-files]
services:
  - name: sensu-files
    action: command
    command: [/bin/sh, -c, 'printf "%%s\n--\n" "$SENSU_TLSD_FILES" >> %[5]s']
service-actions:
  coalesce: 10ms
sensu:
  manage: true
  backend-config: %[3]s
  agent-config: %[4]s
  backend-certificate: backend
`, dir, tlsDir, backend, agent, acted)
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestSensuconfRegeneratesSensuFilesOnRotation drives the wiring of
// regenerate.New in run: when the managed certificate moves (its
// directory changes with a SIGHUP, then it is renewed), the daemon rewrites
// backend.yml and agent.yml in place, keeps their comments and a backup,
// and the service action is told which Sensu files changed.
func TestSensuconfRegeneratesSensuFilesOnRotation(t *testing.T) {
	dir := t.TempDir()
	oldTLS, newTLS := filepath.Join(dir, "tls"), filepath.Join(dir, "tls-2")
	backend, agent, acted := filepath.Join(dir, "backend.yml"), filepath.Join(dir, "agent.yml"), filepath.Join(dir, "acted")
	backendSrc := fmt.Sprintf(`---
# Sensu backend, TLS on (managed by sensu-tlsd)
state-dir: "/var/lib/sensu/sensu-backend"
api-url: "https://localhost:8080"
cert-file: "%[1]s/backend.pem"   # the API and agent listener
key-file: "%[1]s/backend-key.pem"
trusted-ca-file: "%[1]s/ca.pem"
log-level: "warn"
`, oldTLS)
	agentSrc := fmt.Sprintf(`# Sensu agent
name: "app-1"
backend-url:
  - "wss://localhost:8081"
trusted-ca-file: "%s/ca.pem"  # the CA the backend chains to
`, oldTLS)
	for p, s := range map[string]string{backend: backendSrc, agent: agentSrc} {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg := sensuconfRegenConfig(t, dir, oldTLS, backend, agent, acted)
	d := daemonStart(t, dir, cfg)
	waitStatus(t, dir, cfg, "backend", 20*time.Second, "the first set installed", issued)
	testpeer.WaitFor(t, 10*time.Second, "the service action for the first issuance", func() bool {
		b, _ := os.ReadFile(acted)
		return len(b) > 0
	})
	if b, _ := os.ReadFile(backend); string(b) != backendSrc {
		t.Fatalf("backend.yml already pointing at the certificate was rewritten:\n%s", b)
	}
	if b, _ := os.ReadFile(acted); strings.Contains(string(b), backend) {
		t.Errorf("the first issuance reported backend.yml as changed:\n%s", b)
	}
	if err := os.Remove(acted); err != nil {
		t.Fatal(err)
	}

	// The certificate moves to another directory (SIGHUP): the daemon
	// announces the same set at its new paths, and Sensu's files follow.
	sensuconfRegenConfig(t, dir, newTLS, backend, agent, acted)
	d.signal(syscall.SIGHUP)
	// The reload and the move it announces are logged in either order.
	for seen := map[bool]bool{}; len(seen) < 2; {
		line := d.waitLog(`msg="certificate moved" name=backend|msg="configuration reloaded"`, 10*time.Second)
		seen[strings.Contains(line, "certificate moved")] = true
	}
	testpeer.WaitFor(t, 10*time.Second, "the service action for the moved certificate", func() bool {
		b, _ := os.ReadFile(acted)
		return len(b) > 0
	})

	wantBackend := strings.ReplaceAll(backendSrc, oldTLS+"/", newTLS+"/")
	if b, _ := os.ReadFile(backend); string(b) != wantBackend {
		t.Errorf("backend.yml after the move:\n%s\nwant (comments and layout kept):\n%s", b, wantBackend)
	}
	if b, _ := os.ReadFile(backend + ".sensu-tlsd.bak"); string(b) != backendSrc {
		t.Errorf("backend.yml.sensu-tlsd.bak holds %q, want the previous backend.yml", b)
	}
	wantAgent := strings.ReplaceAll(agentSrc, oldTLS+"/", newTLS+"/")
	if b, _ := os.ReadFile(agent); string(b) != wantAgent {
		t.Errorf("agent.yml after the move:\n%s\nwant:\n%s", b, wantAgent)
	}
	b, _ := os.ReadFile(acted)
	files := strings.Split(strings.TrimSpace(strings.Split(string(b), "\n--\n")[0]), "\n")
	for _, want := range []string{backend, agent, filepath.Join(newTLS, "backend.pem")} {
		found := false
		for _, f := range files {
			found = found || f == want
		}
		if !found {
			t.Errorf("SENSU_TLSD_FILES %q lacks %s", files, want)
		}
	}
}
