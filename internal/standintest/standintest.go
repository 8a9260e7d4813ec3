package standintest

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/sensu-tlsd/sensu-tlsd/internal/testbin"
	"github.com/sensu-tlsd/sensu-tlsd/internal/testca"
)

// Package is the stand-in's import path.
const Package = "github.com/sensu-tlsd/sensu-tlsd/internal/standin"

// Binary builds the stand-in once per test process and returns the path
// of the executable.
func Binary(t testing.TB) string {
	t.Helper()
	return testbin.Program(t, Package)
}

// Unit is a sensu-backend.service that runs the stand-in on backendYML
// with flags, appending its output to log.
func Unit(t testing.TB, backendYML, log string, flags ...string) string {
	t.Helper()
	args := strings.Join(append([]string{Binary(t), "-c", backendYML}, flags...), " ")
	return fmt.Sprintf(`[Unit]
Description=stand-in sensu-backend
DefaultDependencies=no
[Service]
Type=exec
ExecStart=%s
StandardOutput=append:%s
StandardError=inherit
`, args, log)
}

// BackendYML writes a backend.yml for the stand-in: TLS from set (when its
// CertFile is not empty) on 127.0.0.1:apiPort and 127.0.0.1:agentPort.
func BackendYML(t testing.TB, path string, set testca.Set, apiPort, agentPort int) {
	t.Helper()
	var b strings.Builder
	if set.CertFile != "" {
		fmt.Fprintf(&b, "cert-file: %s\nkey-file: %s\ntrusted-ca-file: %s\n", set.CertFile, set.KeyFile, set.CAFile)
	}
	fmt.Fprintf(&b, "api-listen-address: 127.0.0.1:%d\nagent-host: 127.0.0.1\nagent-port: %d\n", apiPort, agentPort)
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Start runs the stand-in with cfg (a backend.yml) and extra flags until
// the test ends. It does not wait for readiness: use testpeer.WaitTCP.
func Start(t testing.TB, cfg string, extra ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(Binary(t), append([]string{"-c", cfg}, extra...)...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	})
	return cmd
}
