package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/sensu-tlsd/sensu-tlsd/config/sensu"
	"github.com/sensu-tlsd/sensu-tlsd/internal/testpeer"
)

// TestServicesLockDirWorksForANonRootDaemon is the polkit setup: the
// daemon runs as its own user, and root ran `services act` once. A lock
// directory left root's 0700 by an older version stops the daemon's user
// at start with the path and the fix (it used to refuse every certificate
// at its rotation instead); one root's `services act` makes now belongs to
// the state directory's owner and works for both.
func TestServicesLockDirWorksForANonRootDaemon(t *testing.T) {
	testpeer.NeedRoot(t, "running sensu-tlsd as another user needs root")
	testpeer.NeedPeer(t, sensu.AccountExists("nobody"), "running sensu-tlsd as another user needs the nobody account")
	const uid, gid = 65534, 65534
	dir := t.TempDir()
	// The binary and config must be reachable by nobody.
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(dir, "sensu-tlsd")
	b, err := os.ReadFile(binPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "state")
	if err := os.Mkdir(state, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(state, uid, gid); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "tlsd.yml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`state-dir: %s
certificates:
  - name: web
    profile: server
    hosts: [localhost]
    services: [web]
services:
  - name: web
    action: none
`, state)), 0o644); err != nil {
		t.Fatal(err)
	}
	services := func(asNobody bool, args ...string) result {
		cmd := exec.Command(bin, append([]string{"--config", cfg, "services"}, args...)...)
		cmd.Env = cleanEnv()
		if asNobody {
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid}}
		}
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		var ee *exec.ExitError
		code := 0
		switch {
		case errors.As(err, &ee):
			code = ee.ExitCode()
		case err != nil:
			t.Fatal(err)
		}
		return result{out.String(), errb.String(), code}
	}

	lockDir := filepath.Join(state, "services")
	if err := os.Mkdir(lockDir, 0o700); err != nil { // root's, as an older `services act` left it
		t.Fatal(err)
	}
	r := services(true, "list")
	if r.code == 0 || !strings.Contains(r.stderr, "service lock directory "+lockDir+": nobody cannot create files in "+lockDir) ||
		!strings.Contains(r.stderr, "chown -R nobody: "+lockDir) {
		t.Fatalf("as nobody over root's 0700 lock directory: exit %d\n%s\nwant a failure naming %s and the chown", r.code, r.stderr, lockDir)
	}

	if err := os.Remove(lockDir); err != nil {
		t.Fatal(err)
	}
	if r := services(false, "act", "web"); r.code != 0 {
		t.Fatalf("services act as root: exit %d\n%s", r.code, r.stderr)
	}
	fi, err := os.Stat(lockDir)
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != uid {
		t.Fatalf("root made %s owned by uid %d, want the state directory's %d", lockDir, st.Uid, uid)
	}
	if r := services(true, "act", "web"); r.code != 0 || !strings.Contains(r.stdout, "OK web") || strings.Contains(r.stderr, "without the service lock") {
		t.Fatalf("services act as nobody after root made the lock directory: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}
