package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// daemonProc is a `sensu-tlsd run` started by a test, with its log lines.
type daemonProc struct {
	t    *testing.T
	cmd  *exec.Cmd
	mu   sync.Mutex
	log  []string
	seen int // lines consumed by waitLog
	more chan struct{}
	done chan struct{}
}

// daemonStart runs `sensu-tlsd run --config cfg` in dir.
func daemonStart(t *testing.T, dir, cfg string) *daemonProc {
	t.Helper()
	return daemonStartEnv(t, dir, cfg)
}

// daemonStartEnv is daemonStart with extra environment entries.
func daemonStartEnv(t *testing.T, dir, cfg string, env ...string) *daemonProc {
	t.Helper()
	cmd := exec.Command(binPath, "run", "--config", cfg)
	cmd.Dir = dir
	cmd.Env = append(cleanEnv(), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &daemonProc{t: t, cmd: cmd, more: make(chan struct{}, 1), done: make(chan struct{})}
	go d.read(stderr)
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGKILL)
		<-d.done
		if t.Failed() {
			t.Logf("daemon log:\n%s", strings.Join(d.lines(), "\n"))
		}
	})
	return d
}

func (d *daemonProc) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		d.mu.Lock()
		d.log = append(d.log, sc.Text())
		d.mu.Unlock()
		select {
		case d.more <- struct{}{}:
		default:
		}
	}
	d.cmd.Wait()
	close(d.done)
}

func (d *daemonProc) lines() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.log...)
}

// waitLog waits for the next log line (after those already matched) that
// matches pattern, and returns it.
func (d *daemonProc) waitLog(pattern string, within time.Duration) string {
	d.t.Helper()
	re := regexp.MustCompile(pattern)
	deadline := time.After(within)
	for {
		d.mu.Lock()
		for i := d.seen; i < len(d.log); i++ {
			if re.MatchString(d.log[i]) {
				d.seen = i + 1
				line := d.log[i]
				d.mu.Unlock()
				return line
			}
		}
		d.mu.Unlock()
		select {
		case <-d.more:
		case <-d.done:
			d.t.Fatalf("daemon exited before logging %q", pattern)
		case <-deadline:
			d.t.Fatalf("daemon did not log %q within %s", pattern, within)
		}
	}
}

// noLog fails if a line matching pattern appears during d.
func (d *daemonProc) noLog(pattern string, dur time.Duration) {
	d.t.Helper()
	time.Sleep(dur)
	re := regexp.MustCompile(pattern)
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, l := range d.log[d.seen:] {
		if re.MatchString(l) {
			d.t.Fatalf("daemon logged %q", l)
		}
	}
}

// signal sends sig to the daemon.
func (d *daemonProc) signal(sig os.Signal) {
	d.t.Helper()
	if err := d.cmd.Process.Signal(sig); err != nil {
		d.t.Fatal(err)
	}
}

// metricsAddr is the metrics address the daemon logged at start.
func (d *daemonProc) metricsAddr() string {
	d.t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	re := regexp.MustCompile(`msg="sensu-tlsd running".* metrics=(\S+)`)
	for _, l := range d.log {
		if m := re.FindStringSubmatch(l); m != nil {
			return m[1]
		}
	}
	d.t.Fatal("daemon never logged its metrics address")
	return ""
}

// daemonConfig writes a daemon config in dir managing one backend
// certificate (name backend-1) with the given lifetime and renew-before,
// and returns its path.
func daemonConfig(t *testing.T, dir, lifetime, before string, extra string) string {
	t.Helper()
	cfg := fmt.Sprintf(`state-dir: %[1]s/state
metrics-address: 127.0.0.1:0
renewal:
  before: %[3]s
  jitter: 0s
  retry-min: 1s
  retry-max: 2s
ca:
  dir: %[1]s/ca
  create: true
defaults:
  dir: %[1]s/tls
  lifetime: %[2]s
certificates:
  - name: backend-1
    profile: backend
    hosts: [localhost, 127.0.0.1]
%[4]s`, dir, lifetime, before, extra)
	path := filepath.Join(dir, "tlsd.yml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// daemonSerial reads the serial of the certificate at path with openssl,
// which prints it as sensu-tlsd announces it (whole bytes, upper-case).
func daemonSerial(t *testing.T, path string) string {
	t.Helper()
	out, err := exec.Command("openssl", "x509", "-noout", "-serial", "-in", path).CombinedOutput()
	if err != nil {
		t.Fatalf("openssl x509 %s: %v\n%s", path, err, out)
	}
	return strings.TrimPrefix(strings.TrimSpace(string(out)), "serial=")
}

// daemonVerify checks the set with openssl verify against its CA file.
func daemonVerify(t *testing.T, caFile, certFile string) {
	t.Helper()
	out, err := exec.Command("openssl", "verify", "-CAfile", caFile, certFile).CombinedOutput()
	if err != nil {
		t.Fatalf("openssl verify: %v\n%s", err, out)
	}
}
