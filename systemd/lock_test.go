package systemd

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/config"
	"github.com/sensu-tlsd/sensu-tlsd/internal/testpeer"
)

// lockConfig is one service with a command action that appends to runs.
func lockConfig(stateDir, runs string) *config.Config {
	return &config.Config{
		StateDir:       stateDir,
		Certificates:   []config.Certificate{{Name: "a", Services: []string{"svc"}}},
		Services:       []config.Service{{Name: "svc", Action: "command", Command: []string{"sh", "-c", `echo run >> "$0"`, runs}}},
		ServiceActions: config.ActionPolicy{Coalesce: time.Millisecond},
	}
}

// TestUnusableLockDirFailsAtStart: a lock directory the process cannot
// use is an error when the services are built, naming the path and the
// fix, not a refused certificate at the next rotation.
func TestUnusableLockDirFailsAtStart(t *testing.T) {
	dir := t.TempDir()
	lockDir := filepath.Join(dir, "services")
	if err := os.WriteFile(lockDir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := FromConfig(lockConfig(dir, filepath.Join(dir, "runs")), nil, nil)
	if err == nil || !strings.Contains(err.Error(), "service lock directory") || !strings.Contains(err.Error(), "fix: make "+lockDir+" a directory") {
		t.Fatalf("FromConfig over a file where the lock directory goes = %v, want the path and the fix", err)
	}
}

// TestLockErrorAtActionTimeActsUnlocked: when the lock file cannot be
// opened at action time, the action still runs and the change is not
// reported as a failure (which would roll the certificate back and
// refuse it for good); the log says the lock was skipped.
func TestLockErrorAtActionTimeActsUnlocked(t *testing.T) {
	dir := t.TempDir()
	runs := filepath.Join(dir, "runs")
	var log strings.Builder
	d, err := FromConfig(lockConfig(dir, runs), slog.New(slog.NewTextHandler(&log, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	lockDir := filepath.Join(dir, "services")
	if err := os.RemoveAll(lockDir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(lockDir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := d.CertificateChanged(context.Background(), changeOf("a", "0A")); err != nil {
		t.Fatalf("a lock file error was reported as the service failing: %v", err)
	}
	if got := lines(t, runs); len(got) != 1 {
		t.Fatalf("the action ran %d times, want once", len(got))
	}
	if !strings.Contains(log.String(), `msg="acting without the service lock`) {
		t.Fatalf("the skipped lock is not logged:\n%s", log.String())
	}
}

// TestLockDirMadeByRootBelongsToTheDaemonUser: `services act` run by root
// makes the lock directory and files with the state directory's owner, so
// a daemon running as that user (the polkit setup) can still lock them.
func TestLockDirMadeByRootBelongsToTheDaemonUser(t *testing.T) {
	testpeer.NeedRoot(t, "giving the lock directory to the state directory's owner needs root")
	dir := t.TempDir()
	const uid, gid = 65534, 65534
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	d, err := FromConfig(lockConfig(dir, filepath.Join(t.TempDir(), "runs")), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Act(context.Background(), "svc", Batch{changeOf("a", "0A")}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{filepath.Join(dir, "services"), filepath.Join(dir, "services", "svc.lock")} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != uid || st.Gid != gid {
			t.Errorf("%s is owned by %d:%d, want the state directory's %d:%d", p, st.Uid, st.Gid, uid, gid)
		}
	}
}
