package main

import (
	"bufio"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/internal/pki"
	"github.com/sensu-tlsd/sensu-tlsd/internal/testpeer"
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
	return d.awaitLog(pattern, within, true)
}

// awaitLog waits for a log line matching pattern: the next one after those
// waitLog matched when consume (and it moves that position), else any.
func (d *daemonProc) awaitLog(pattern string, within time.Duration, consume bool) string {
	d.t.Helper()
	re := regexp.MustCompile(pattern)
	deadline := time.After(within)
	for {
		d.mu.Lock()
		start := 0
		if consume {
			start = d.seen
		}
		for i := start; i < len(d.log); i++ {
			if re.MatchString(d.log[i]) {
				if consume {
					d.seen = i + 1
				}
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

// metricsAddr is the metrics address the daemon logged at start (the
// tests' configs ask for port 0).
func (d *daemonProc) metricsAddr() string {
	d.t.Helper()
	line := d.findLog(`msg="sensu-tlsd running".* metrics=(\S+)`, 20*time.Second)
	return regexp.MustCompile(`metrics=(\S+)`).FindStringSubmatch(line)[1]
}

// findLog waits for any log line, consumed or not, matching pattern; it
// does not move waitLog's position.
func (d *daemonProc) findLog(pattern string, within time.Duration) string {
	d.t.Helper()
	return d.awaitLog(pattern, within, false)
}

// metric is the value of one series on the daemon's /metrics, as the text
// format prints it (`sensu_tlsd_renewals_total{name="api",reason="renewal"}`),
// and 0 while the series is absent.
func (d *daemonProc) metric(series string) float64 {
	d.t.Helper()
	resp, err := http.Get("http://" + d.metricsAddr() + "/metrics")
	if err != nil {
		d.t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				d.t.Fatalf("/metrics: %s: %v", sc.Text(), err)
			}
			return f
		}
	}
	return 0
}

// waitMetric polls /metrics until series reaches at least want, and
// returns its value.
func (d *daemonProc) waitMetric(series string, want float64, within time.Duration) float64 {
	d.t.Helper()
	var got float64
	testpeer.WaitFor(d.t, within, fmt.Sprintf("%s to reach %v", series, want), func() bool {
		got = d.metric(series)
		return got >= want
	})
	return got
}

// renewals is the series counting the sets installed for name for reason
// (initial, renewal, external, rollback).
func renewals(name, reason string) string {
	return fmt.Sprintf(`sensu_tlsd_renewals_total{name=%q,reason=%q}`, name, reason)
}

// renewalFailures is the series counting name's failed attempts by reason
// (issue, validate, install, consumer, external).
func renewalFailures(name, reason string) string {
	return fmt.Sprintf(`sensu_tlsd_renewal_failures_total{name=%q,reason=%q}`, name, reason)
}

// renewalState is what `sensu-tlsd status --json` reports of the daemon's
// last work on a managed certificate.
type renewalState struct {
	Serial     string `json:"serial"`
	Generation int    `json:"generation"`
	Failures   int    `json:"failures"`
	LastError  string `json:"last_error"`
	Reason     string `json:"reason"`
}

// waitStatus polls `sensu-tlsd status --json --config cfg` until ok
// accepts the renewal state of the certificate name, and returns it.
func waitStatus(t *testing.T, dir, cfg, name string, within time.Duration, what string, ok func(renewalState) bool) renewalState {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		r := run(t, dir, nil, "status", "--json", "--config", cfg)
		var report struct {
			Certificates []struct {
				Name    string        `json:"name"`
				Renewal *renewalState `json:"renewal"`
			} `json:"certificates"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &report); err != nil {
			t.Fatalf("status --json: %v\n%s%s", err, r.stdout, r.stderr)
		}
		for _, c := range report.Certificates {
			if c.Name == name && c.Renewal != nil && ok(*c.Renewal) {
				return *c.Renewal
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("status --json did not show %s within %s: %s\n%s", what, within, name, r.stdout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// issued accepts a state whose certificate was installed.
func issued(s renewalState) bool { return s.Serial != "" }

// fileSerial is the serial of the certificate at path as sensu-tlsd
// reports it (whole bytes, upper-case, as openssl prints it).
func fileSerial(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("%s holds no PEM block", path)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return pki.SerialHex(c)
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
