package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSensuconfMoveReachesTheReloadedSensuFiles: a SIGHUP that moves the
// certificate and also points sensu.backend-config at another file has the
// move written into that new file, by the consumers the reload built; the
// file the old configuration named is left as it was.
func TestSensuconfMoveReachesTheReloadedSensuFiles(t *testing.T) {
	dir := t.TempDir()
	oldTLS, newTLS := filepath.Join(dir, "tls"), filepath.Join(dir, "tls-2")
	oldBackend, newBackend := filepath.Join(dir, "backend.yml"), filepath.Join(dir, "backend-2.yml")
	agent, acted := filepath.Join(dir, "agent.yml"), filepath.Join(dir, "acted")
	backendSrc := fmt.Sprintf(`cert-file: "%[1]s/backend.pem"
key-file: "%[1]s/backend-key.pem"
trusted-ca-file: "%[1]s/ca.pem"
`, oldTLS)
	agentSrc := fmt.Sprintf("trusted-ca-file: \"%s/ca.pem\"\n", oldTLS)
	for p, s := range map[string]string{oldBackend: backendSrc, newBackend: backendSrc, agent: agentSrc} {
		writeTestFile(t, p, s)
	}
	cfg := sensuconfRegenConfig(t, dir, oldTLS, oldBackend, agent, acted)
	d := daemonStart(t, dir, cfg)
	waitStatus(t, dir, cfg, "backend", 20*time.Second, "the first set installed", issued)
	d.waitLog(`msg="consumers took the certificate" name=backend`, 10*time.Second)

	sensuconfRegenConfig(t, dir, newTLS, newBackend, agent, acted)
	d.signal(syscall.SIGHUP)
	d.waitLog(`msg="certificate moved" name=backend`, 10*time.Second)
	d.waitLog(`msg="consumers took the certificate" name=backend`, 10*time.Second)
	want := strings.ReplaceAll(backendSrc, oldTLS+"/", newTLS+"/")
	if b, _ := os.ReadFile(newBackend); string(b) != want {
		t.Errorf("%s, the reloaded sensu.backend-config, after the move:\n%s\nwant:\n%s", newBackend, b, want)
	}
	if b, _ := os.ReadFile(oldBackend); string(b) != backendSrc {
		t.Errorf("%s, which the reload no longer names, was rewritten by the old consumers:\n%s", oldBackend, b)
	}
}
