package rotate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/config"
	"github.com/sensu-tlsd/sensu-tlsd/internal/pki"
	"github.com/sensu-tlsd/sensu-tlsd/rotate/install"
)

// execKillDelay bounds the wait for a command's output after it exited or
// was killed: a grandchild that inherited stderr cannot hold the issuer.
const execKillDelay = 2 * time.Second

// execIssuer runs an external command (cfssl, step, vault CLIs) that writes
// the set into files named by environment variables.
type execIssuer struct {
	argv    []string
	timeout time.Duration
}

func newExecIssuer(c config.ExecIssuer) (execIssuer, error) {
	if len(c.Command) == 0 || c.Command[0] == "" {
		return execIssuer{}, errors.New("exec.command is empty: give the program and its arguments as a list, e.g. [/usr/local/bin/issue-cert, --profile, backend]")
	}
	if c.Timeout <= 0 {
		return execIssuer{}, fmt.Errorf("exec.timeout %s: give the command a positive time limit, e.g. 2m", c.Timeout)
	}
	return execIssuer{argv: c.Command, timeout: c.Timeout}, nil
}

// Issue runs the command with SENSU_TLSD_CERT_FILE, SENSU_TLSD_KEY_FILE and
// SENSU_TLSD_CA_FILE naming files in stage, and reads what it wrote. The
// command runs in a process group of its own, killed whole at the timeout.
// Its stdout is not kept (`cfssl gencert` prints the key there); the tail of
// stderr, with any PEM block removed, explains a failure.
func (e execIssuer) Issue(ctx context.Context, p Plan, stage string, _ *slog.Logger) (install.Set, error) {
	ctx, cancel := context.WithTimeout(ctx, e.timeout)
	defer cancel()
	files := install.Paths{
		Cert: filepath.Join(stage, install.CertName),
		Key:  filepath.Join(stage, install.KeyName),
		CA:   filepath.Join(stage, install.CAName),
	}
	cmd := exec.CommandContext(ctx, e.argv[0], e.argv[1:]...)
	cmd.Dir = stage
	cmd.Env = append(os.Environ(),
		"SENSU_TLSD_NAME="+p.Name,
		"SENSU_TLSD_PROFILE="+string(p.Profile),
		"SENSU_TLSD_COMMON_NAME="+p.CommonName,
		"SENSU_TLSD_HOSTS="+strings.Join(p.Hosts, ","),
		"SENSU_TLSD_KEY_TYPE="+p.KeyType,
		"SENSU_TLSD_LIFETIME="+p.Lifetime.String(),
		"SENSU_TLSD_CERT_FILE="+files.Cert,
		"SENSU_TLSD_KEY_FILE="+files.Key,
		"SENSU_TLSD_CA_FILE="+files.CA,
	)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = execKillDelay
	var stdout lineCounter
	stderr := &tailBuffer{max: stderrKept}
	cmd.Stdout, cmd.Stderr = &stdout, stderr
	err := cmd.Run()
	if ctx.Err() == context.DeadlineExceeded {
		return install.Set{}, fmt.Errorf("exec issuer %q did not finish within exec.timeout %s; it and every process it started were killed%s", e.argv[0], e.timeout, tail(stderr.Bytes(), stdout))
	}
	if err != nil {
		return install.Set{}, fmt.Errorf("exec issuer %q: %w%s", e.argv[0], err, tail(stderr.Bytes(), stdout))
	}
	set, err := followedFiles{paths: files}.ReadConfigured()
	if err != nil {
		return install.Set{}, fmt.Errorf("exec issuer %q exited 0 but did not write the set it was asked for: %w", e.argv[0], err)
	}
	return set, nil
}

// stderrKept is how much of the end of a command's stderr is kept, and
// tailMax how much of that (redacted) goes into an error message.
const (
	stderrKept = 16 << 10
	tailMax    = 500
)

// tail is the end of a command's stderr, PEM blocks redacted, plus how
// much stdout it printed, for error messages (which reach the log, the
// state file and `status`).
func tail(stderr []byte, stdout lineCounter) string {
	out := bytes.TrimSpace(redactPEM(stderr))
	if len(out) > tailMax {
		out = append([]byte("…"), out[len(out)-tailMax:]...)
	}
	var s string
	if len(out) > 0 {
		s = ": " + string(out)
	}
	if stdout > 0 {
		s += fmt.Sprintf(" (stdout: %d lines, not shown: they may hold key material)", stdout)
	}
	return s
}

var (
	pemBegin   = []byte("-----BEGIN ")
	pemEnd     = []byte("-----END ")
	pemDashes  = []byte("-----")
	pemRemoved = []byte("[PEM block removed]")
)

// redactPEM replaces every PEM block in b, and also a block cut at either
// end: text up to an END with no BEGIN before it (the start of a kept
// tail) and text after a BEGIN with no END (output that stops mid-key).
func redactPEM(b []byte) []byte {
	var out []byte
	for len(b) > 0 {
		begin, end := bytes.Index(b, pemBegin), bytes.Index(b, pemEnd)
		switch {
		case end >= 0 && (begin < 0 || end < begin):
			out = append(out, pemRemoved...)
			b = afterEndLine(b[end:])
		case begin >= 0:
			out = append(append(out, b[:begin]...), pemRemoved...)
			rest := b[begin:]
			e := bytes.Index(rest, pemEnd)
			if e < 0 {
				return out
			}
			b = afterEndLine(rest[e:])
		default:
			return append(out, b...)
		}
	}
	return out
}

// afterEndLine is what follows the "-----END X-----" that b starts with.
func afterEndLine(b []byte) []byte {
	i := bytes.Index(b[len(pemEnd):], pemDashes)
	if i < 0 {
		return nil
	}
	return b[len(pemEnd)+i+len(pemDashes):]
}

// lineCounter counts the lines written to it and keeps nothing.
type lineCounter int

func (c *lineCounter) Write(p []byte) (int, error) {
	*c += lineCounter(bytes.Count(p, []byte{'\n'}))
	return len(p), nil
}

// tailBuffer keeps the last max bytes written to it. It is redacted as a
// whole, so a key cut at the start of what is kept is still removed.
type tailBuffer struct {
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) Bytes() []byte { return t.buf }

// readFile reads what an issuer or another tool wrote, bounded by limit
// (what names the content, for the error).
func readFile(path string, limit int64, what string) ([]byte, error) {
	b, err := pki.ReadFileLimited(path, limit, what)
	if err == nil && len(b) == 0 {
		return nil, fmt.Errorf("%s is empty", path)
	}
	return b, err
}
