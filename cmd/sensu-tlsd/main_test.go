package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/internal/testbin"
)

// binPath is the sensu-tlsd binary built once for every integration test in
// this package, into the test process's private directory (internal/testbin);
// the tests drive it the way an operator would.
var binPath string

func TestMain(m *testing.M) {
	os.Exit(testbin.Main(m, func() (err error) {
		var flags []string
		if raceEnabled {
			flags = append(flags, "-race")
		}
		binPath, err = testbin.Build(".", flags...)
		return err
	}))
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

// writeTestFile writes content to path (0600: some are keys) or fails the test.
func writeTestFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
