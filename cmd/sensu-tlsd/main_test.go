package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/internal/systemdtest"
)

// binPath is the sensu-tlsd binary built once for every integration test in
// this package; the tests drive it the way an operator would.
var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sensu-tlsd-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "sensu-tlsd")
	args := []string{"build", "-o", binPath}
	if raceEnabled {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, ".")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building sensu-tlsd for the integration tests:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// result is what one run of the binary produced.
type result struct {
	stdout, stderr string
	code           int
}

// run runs the built binary to completion with args and the extra
// environment entries env (KEY=VALUE), inside dir when it is not "".
func run(t *testing.T, dir string, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, args...)
	cmd.Dir = dir
	cmd.Env = append(cleanEnv(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("running sensu-tlsd %v: %v", args, err)
	}
	return result{out.String(), errb.String(), code}
}

// mustRun is run that fails the test unless the exit status is 0.
func mustRun(t *testing.T, dir string, env []string, args ...string) result {
	t.Helper()
	r := run(t, dir, env, args...)
	if r.code != 0 {
		t.Fatalf("sensu-tlsd %v: exit %d\nstdout:\n%s\nstderr:\n%s", args, r.code, r.stdout, r.stderr)
	}
	return r
}

// cleanEnv is the test process environment without SENSU_TLSD_* variables,
// so a developer's shell cannot change what a test sees.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if len(kv) >= 11 && kv[:11] == "SENSU_TLSD_" {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// needPeer is systemdtest.NeedPeer: skip loudly when a real peer is missing,
// fail when SENSU_TLSD_REQUIRE_PEERS=1 (as .ci/run sets).
func needPeer(t *testing.T, ok bool, why string) {
	t.Helper()
	systemdtest.NeedPeer(t, ok, why)
}

// lookPath reports whether program is on PATH, for needPeer.
func lookPath(program string) bool {
	_, err := exec.LookPath(program)
	return err == nil
}
