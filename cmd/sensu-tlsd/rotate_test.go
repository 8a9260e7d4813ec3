package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/internal/testpeer"
)

// TestRotateExecKeyNeverReachesLogOrState: an exec issuer that prints a
// private key (as `cfssl gencert` does on stdout, and a confused script on
// stderr) and fails. The failure is logged, persisted and shown by status
// with the script's message, but the key appears nowhere, and state.json
// is not readable by other users.
func TestRotateExecKeyNeverReachesLogOrState(t *testing.T) {
	testpeer.NeedPeer(t, testpeer.HasProgram("openssl"), "openssl makes the key the script prints")
	dir := t.TempDir()
	key := filepath.Join(dir, "leaked-key.pem")
	opensslOut(t, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key)
	script := filepath.Join(dir, "leaky.sh")
	os.WriteFile(script, []byte(fmt.Sprintf(`#!/bin/sh
cat %[1]s
echo "cfssl: signing failed: the CA key is not readable" >&2
cat %[1]s >&2
exit 1
`, key)), 0o755)
	cfg := daemonConfig(t, dir, "1h", "33%", fmt.Sprintf(`    issuer:
      type: exec
      exec:
        command: [%s]
`, script))
	d := daemonStart(t, dir, cfg)
	waitStatus(t, dir, cfg, "backend-1", 20*time.Second, "the issuer's failure", func(s renewalState) bool {
		return strings.Contains(s.LastError, "the CA key is not readable")
	})

	// The failure is logged first, then persisted.
	statePath := filepath.Join(dir, "state", "certs", "backend-1", "state.json")
	var state []byte
	testpeer.WaitFor(t, 5*time.Second, "the failure in state.json", func() bool {
		state, _ = os.ReadFile(statePath)
		return strings.Contains(string(state), "the CA key is not readable")
	})
	status := run(t, dir, nil, "status", "--config", cfg)
	body, _ := os.ReadFile(key)
	secret := strings.Split(string(body), "\n")[1] // a line of the key's base64
	for what, text := range map[string]string{
		"daemon log": strings.Join(d.lines(), "\n"), "state.json": string(state), "status": status.stdout + status.stderr,
	} {
		if strings.Contains(text, "PRIVATE KEY") || strings.Contains(text, secret) {
			t.Errorf("%s holds the private key the issuer printed:\n%s", what, text)
		}
	}
	if fi, err := os.Stat(statePath); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("state.json mode %v (%v), want 0600: it holds issuer output", fi.Mode().Perm(), err)
	}
}

// TestRotateExecTimeoutKillsGrandchildren: `timeout: 2s` with a command
// whose child keeps the output pipe open (sh -c "sleep 30; true") fails at
// the timeout, not when the child ends.
func TestRotateExecTimeoutKillsGrandchildren(t *testing.T) {
	dir := t.TempDir()
	cfg := daemonConfig(t, dir, "1h", "33%", `    issuer:
      type: exec
      exec:
        command: [/bin/sh, -c, "sleep 30; true"]
        timeout: 2s
`)
	start := time.Now()
	daemonStart(t, dir, cfg)
	waitStatus(t, dir, cfg, "backend-1", 20*time.Second, "the timeout", func(s renewalState) bool {
		return strings.Contains(s.LastError, "did not finish within exec.timeout 2s")
	})
	// 30 s would mean the grandchild held the daemon; allow a loaded machine.
	if took := time.Since(start); took > 15*time.Second {
		t.Fatalf("the timed-out issuer was reported after %s", took)
	}
}

// TestRotateConfigRefusesWhatTheDaemonCannotRun: `config validate` rejects
// what the daemon would (a name that is no file name, a CA bundle two
// issuers would overwrite) and accepts what it runs (renew-before in days).
func TestRotateConfigRefusesWhatTheDaemonCannotRun(t *testing.T) {
	dir := t.TempDir()
	write := func(body string) string {
		p := filepath.Join(dir, "tlsd.yml")
		os.WriteFile(p, []byte("state-dir: "+dir+"/state\n"+body), 0o644)
		return p
	}
	for body, want := range map[string]string{
		"certificates:\n  - name: ../escape\n    profile: server\n": `certificates[0] (../escape).name: certificate name "../escape" is not a plain file name`,
		"certificates:\n  - name: backend-1\n    profile: backend\n  - name: api\n    profile: server\n    issuer: {type: exec, exec: {command: [/bin/true]}}\n": "certificates[1] (api).ca-file",
	} {
		r := run(t, dir, nil, "config", "validate", write(body))
		if r.code == 0 || !strings.Contains(r.stderr, want) {
			t.Errorf("config validate of\n%s: exit %d, stderr %q, want %q", body, r.code, r.stderr, want)
		}
	}
	cfg := write("ca:\n  create: true\nrenewal:\n  before: 30d\ncertificates:\n  - name: backend-1\n    profile: backend\n    lifetime: 90d\n")
	mustRun(t, dir, nil, "config", "validate", cfg)
	r := mustRun(t, dir, nil, "renew", "backend-1", "--config", cfg)
	if !strings.Contains(r.stdout, "renewed") {
		t.Fatalf("renew with renew-before 30d: %q", r.stdout)
	}
}
