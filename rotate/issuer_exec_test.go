package rotate

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/config"
)

// keyPEM is what `cfssl gencert` prints on stdout, key included.
const keyPEM = `-----BEGIN EC PRIVATE KEY-----
MHcCAQEEIKz8jYxD1sQhYd1mKvP3q0cQw5lUOfHqB7G9bBf1Xe1XoAoGCCqGSM49
AwEHoUQDQgAE4v9Zr7VdKcV1t6wzq5Qy2Q0y3Zb1y8kJb4cK0xkq1Yc2s0xq8n9a
-----END EC PRIVATE KEY-----`

func TestRedactPEMRemovesWholeAndCutBlocks(t *testing.T) {
	body := "MHcCAQEEIKz8jYxD1sQhYd1mKvP3q0cQw5lUOfHqB7G9bBf1Xe1XoAoGCCqGSM49"
	for _, tc := range []struct{ in, want string }{
		{"error: sealed\n" + keyPEM + "\nexit 1", "error: sealed\n[PEM block removed]\nexit 1"},
		{body + "\n-----END EC PRIVATE KEY-----\nexit 1", "[PEM block removed]\nexit 1"},         // tail starts mid-key
		{"partial:\n-----BEGIN PRIVATE KEY-----\n" + body, "partial:\n[PEM block removed]"},      // output stops mid-key
		{"a " + keyPEM + " b " + keyPEM + " c", "a [PEM block removed] b [PEM block removed] c"}, // two blocks
		{"no pem here", "no pem here"},
	} {
		if got := string(redactPEM([]byte(tc.in))); got != tc.want {
			t.Errorf("redactPEM(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestExecFailureNeverCarriesKeyMaterial runs an issuer that prints a key
// on stdout and on stderr (one cut by the buffer that keeps stderr's end,
// one whole) and fails: the error, which reaches the log, state.json and
// `status`, keeps its message but no key.
func TestExecFailureNeverCarriesKeyMaterial(t *testing.T) {
	dir := t.TempDir()
	// The kept end of stderr starts 60 bytes before the first key ends.
	rest := "\n" + keyPEM + "\nvault is sealed\n"
	pad := strings.Repeat("p", stderrKept-60-len(rest))
	stderr := filepath.Join(dir, "stderr")
	os.WriteFile(stderr, []byte(strings.Repeat("early output\n", 10)+keyPEM+pad+rest), 0o600)
	script := filepath.Join(dir, "leaky.sh")
	os.WriteFile(script, []byte(`#!/bin/sh
printf '{"cert":"...","key":"%s"}\n' "$(cat "$1")"
cat "$2" >&2
exit 1
`), 0o755)
	keyFile := filepath.Join(dir, "key")
	os.WriteFile(keyFile, []byte(keyPEM), 0o600)
	e, err := newExecIssuer(config.ExecIssuer{Command: []string{script, keyFile, stderr}, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.Issue(context.Background(), Plan{Name: "backend-1"}, t.TempDir(), slog.New(slog.DiscardHandler))
	if err == nil {
		t.Fatal("a failing issuer succeeded")
	}
	msg := err.Error()
	for _, secret := range []string{"PRIVATE KEY", "MHcCAQEEIKz8", "AwEHoUQDQgAE", "x8kJb4cK0xkq1Yc2s0xq8n9a"} {
		if strings.Contains(msg, secret) {
			t.Fatalf("the error carries key material (%s): %s", secret, msg)
		}
	}
	if !strings.Contains(msg, "vault is sealed") || !strings.Contains(msg, "stdout: 4 lines, not shown") {
		t.Fatalf("the error lost the command's message: %s", msg)
	}
}

// TestExecTimeoutKillsTheWholeProcessGroup: a grandchild holding the
// output pipe must not keep the issuer waiting past its timeout.
func TestExecTimeoutKillsTheWholeProcessGroup(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "grandchild.pid")
	script := filepath.Join(dir, "slow.sh")
	os.WriteFile(script, []byte("#!/bin/sh\nsleep 30 &\necho $! >\"$1\"\nwait\ntrue\n"), 0o755)
	e, err := newExecIssuer(config.ExecIssuer{Command: []string{script, pidFile}, Timeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = e.Issue(context.Background(), Plan{Name: "backend-1"}, t.TempDir(), slog.New(slog.DiscardHandler))
	took := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), "exec.timeout 500ms") {
		t.Fatalf("issuer past its timeout: %v", err)
	}
	// Far below the grandchild's 30 s: the timeout, plus execKillDelay at
	// most, plus slack for a loaded machine.
	if took > 500*time.Millisecond+execKillDelay+5*time.Second {
		t.Fatalf("Issue returned after %s: the grandchild held it", took)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	for deadline := time.Now().Add(5 * time.Second); alive(pid); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the grandchild (pid %d) outlived the timeout", pid)
		}
	}
}

// alive reports whether pid runs (a zombie waiting for its reaper does not).
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	return len(fields) > 0 && fields[0] != "Z"
}
