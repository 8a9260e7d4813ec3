package systemdtest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	standinOnce sync.Once
	standinPath string
	standinErr  error
)

// Standin builds the stand-in backend (internal/standin) once per test
// binary and returns the path of the executable. Each build renames over
// the previous one, so a unit still running the old file keeps it.
func Standin(t testing.TB) string {
	t.Helper()
	standinOnce.Do(func() {
		// One fixed path per checkout, replaced by rename, so parallel
		// test binaries share it and nothing is left behind per run; two
		// checkouts on one machine do not run each other's stand-in.
		_, self, _, _ := runtime.Caller(0)
		pkg := filepath.Join(filepath.Dir(self), "..", "standin")
		checkout := sha256.Sum256([]byte(pkg))
		dir := filepath.Join(os.TempDir(), "sensu-tlsd-test-bin", hex.EncodeToString(checkout[:6]))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			standinErr = err
			return
		}
		standinPath = filepath.Join(dir, "standin")
		tmp := fmt.Sprintf("%s.%d", standinPath, os.Getpid())
		out, err := exec.Command("go", "build", "-o", tmp, pkg).CombinedOutput()
		if err != nil {
			standinErr = fmt.Errorf("building the stand-in: %v\n%s", err, out)
			return
		}
		standinErr = os.Rename(tmp, standinPath)
	})
	if standinErr != nil {
		t.Fatal(standinErr)
	}
	return standinPath
}

// BackendUnit is a sensu-backend.service that runs the stand-in on
// backendYML with flags, appending its output to log.
func BackendUnit(t testing.TB, backendYML, log string, flags ...string) string {
	t.Helper()
	args := strings.Join(append([]string{Standin(t), "-c", backendYML}, flags...), " ")
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

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// BackendYML writes a backend.yml for the stand-in: TLS from set (when its
// CertFile is not empty) on 127.0.0.1:apiPort and 127.0.0.1:agentPort.
func BackendYML(t testing.TB, path string, set Set, apiPort, agentPort int) {
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

// StartBackend runs the built stand-in backend with cfg (a backend.yml)
// and extra flags until the test ends. It does not wait for readiness:
// use WaitHTTP.
func StartBackend(t testing.TB, cfg string, extra ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(Standin(t), append([]string{"-c", cfg}, extra...)...)
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

// WaitTCP waits until address accepts a connection.
func WaitTCP(t testing.TB, address string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", address, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never accepted: %v", address, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
