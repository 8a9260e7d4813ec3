package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestQuickstartExample runs examples/quickstart.yml as a newcomer would,
// unprivileged paths relative to the working directory: the CA is created,
// the guide's five certificates are issued and `status` finds them sound.
func TestQuickstartExample(t *testing.T) {
	dir := t.TempDir()
	example, err := os.ReadFile("../../examples/quickstart.yml")
	if err != nil {
		t.Fatal(err)
	}
	// Port 0: a developer may already run the quickstart on 9467.
	cfg := filepath.Join(dir, "quickstart.yml")
	os.WriteFile(cfg, []byte(strings.Replace(string(example), "127.0.0.1:9467", "127.0.0.1:0", 1)), 0o644)
	d := daemonStart(t, dir, "quickstart.yml")
	for _, name := range []string{"backend-1", "backend-2", "backend-3", "client", "agent-1"} {
		waitStatus(t, dir, cfg, name, 30*time.Second, "the first set installed", issued)
	}
	// The five share one ca.pem and are installed at once: not one of
	// them may fail (they once raced on the bundle's temp link).
	for _, l := range d.lines() {
		if strings.Contains(l, "renewal failed") || strings.Contains(l, "level=ERROR") {
			t.Errorf("fresh quickstart start logged a failure: %s", l)
		}
	}
	r := mustRun(t, dir, nil, "status", "--config", "quickstart.yml")
	for _, name := range []string{"backend-1", "backend-2", "backend-3", "client", "agent-1"} {
		if !strings.Contains(r.stdout, name) {
			t.Errorf("status does not list %s:\n%s", name, r.stdout)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "quickstart-state", "ca", "ca-key.pem")); err != nil {
		t.Fatalf("quickstart CA not created under the working directory: %v", err)
	}
	st := mustRun(t, dir, nil, "check", "--config", "quickstart.yml", "--warn", "1m", "--crit", "30s")
	if st.code != 0 {
		t.Fatalf("check on fresh quickstart certs: %+v", st)
	}
}
