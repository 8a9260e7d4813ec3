package main

import (
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/internal/testpeer"
)

func TestDaemonRenewsShortLivedCertificateOnTime(t *testing.T) {
	testpeer.NeedPeer(t, testpeer.HasProgram("openssl"), "openssl verifies the renewed set")
	dir := t.TempDir()
	cfg := daemonConfig(t, dir, "30s", "25s", "")
	d := daemonStart(t, dir, cfg)
	first := waitStatus(t, dir, cfg, "backend-1", 20*time.Second, "the first set installed", issued)
	start := time.Now()
	second := waitStatus(t, dir, cfg, "backend-1", 20*time.Second, "a renewed set", func(s renewalState) bool { return s.Serial != first.Serial })
	// Due 25s before a 30s expiry (not-after is whole seconds, so up to
	// 1s earlier), less at most 2.5s of jitter: 1.5s to 5s, with slack
	// for a loaded machine at the top.
	if took := time.Since(start); took < time.Second || took > 15*time.Second {
		t.Fatalf("renewal came %s after issue, want about 1.5s to 5s", took)
	}
	tls := filepath.Join(dir, "tls")
	daemonVerify(t, filepath.Join(tls, "ca.pem"), filepath.Join(tls, "backend-1.pem"))
	if got, want := daemonSerial(t, filepath.Join(tls, "backend-1.pem")), second.Serial; got != want {
		t.Fatalf("serial on disk %s, status reports %s", got, want)
	}
	if n := d.metric(renewals("backend-1", "renewal")); n != 1 {
		t.Errorf("%s = %v, want 1", renewals("backend-1", "renewal"), n)
	}
	mustRun(t, dir, nil, "status", "--config", cfg)

	resp, err := http.Get("http://" + d.metricsAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`sensu_tlsd_certificate_expiry_timestamp_seconds{name="backend-1"}`,
		`sensu_tlsd_certificate_next_renewal_timestamp_seconds{name="backend-1"}`,
		`sensu_tlsd_renewals_total{name="backend-1",reason="renewal"}`,
		`sensu_tlsd_certificate_last_success_timestamp_seconds{name="backend-1"}`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if resp, err := http.Get("http://" + d.metricsAddr() + "/healthz"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("/healthz: %v %v", resp, err)
	}

	d.signal(syscall.SIGTERM)
	d.waitLog(`msg="shutting down"`, 5*time.Second)
	<-d.done
	if code := d.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("exit status after SIGTERM: %d", code)
	}
}

func TestDaemonFollowsExternalReplacementAndUndoesBadOne(t *testing.T) {
	testpeer.NeedPeer(t, testpeer.HasProgram("openssl"), "openssl reads serials")
	dir := t.TempDir()
	cfg := daemonConfig(t, dir, "1h", "33%", "")
	d := daemonStart(t, dir, cfg)
	waitStatus(t, dir, cfg, "backend-1", 20*time.Second, "the first set installed", issued)
	tls := filepath.Join(dir, "tls")
	certFile, keyFile := filepath.Join(tls, "backend-1.pem"), filepath.Join(tls, "backend-1-key.pem")

	// An operator issues a new set from the same CA and moves it in place.
	out := filepath.Join(dir, "operator")
	mustRun(t, dir, nil, "issue", "backend-1", "--profile", "backend", "--hosts", "localhost,127.0.0.1",
		"--ca-dir", filepath.Join(dir, "ca"), "--out", out, "--lifetime", "1h")
	newSerial := daemonSerial(t, filepath.Join(out, "backend-1.pem"))
	if err := os.Rename(filepath.Join(out, "backend-1-key.pem"), keyFile); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(out, "backend-1.pem"), certFile); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, dir, cfg, "backend-1", 5*time.Second, "the operator's set followed", func(s renewalState) bool { return s.Serial == newSerial })

	// A cert from a CA nobody trusts, copied over the old one with cp.
	other := filepath.Join(dir, "other")
	mustRun(t, dir, nil, "ca", "init", "--dir", other)
	mustRun(t, dir, nil, "issue", "backend-1", "--profile", "backend", "--hosts", "localhost,127.0.0.1",
		"--ca-dir", other, "--out", other, "--lifetime", "1h")
	for _, f := range [][2]string{{"backend-1-key.pem", keyFile}, {"backend-1.pem", certFile}} {
		b, err := os.ReadFile(filepath.Join(other, f[0]))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f[1], b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	waitStatus(t, dir, cfg, "backend-1", 5*time.Second, "the replacement rejected for its chain", func(s renewalState) bool {
		return s.Reason == "external" && strings.Contains(s.LastError, "chain")
	})
	testpeer.WaitFor(t, 5*time.Second, "the last valid set back on disk", func() bool { return fileSerial(t, certFile) == newSerial })
	daemonVerify(t, filepath.Join(tls, "ca.pem"), certFile)
	time.Sleep(300 * time.Millisecond)
	if n := d.metric(renewals("backend-1", "external")); n != 1 {
		t.Errorf("%s = %v, want 1: only the operator's valid set is announced", renewals("backend-1", "external"), n)
	}
}

// TestDaemonSIGHUPRejectsBrokenConfigAndAppliesGoodOne: an unknown key and
// a YAML syntax error are both rejected with their reason, nothing of them
// is applied, and the running configuration keeps working.
func TestDaemonSIGHUPRejectsBrokenConfigAndAppliesGoodOne(t *testing.T) {
	dir := t.TempDir()
	cfg := daemonConfig(t, dir, "1h", "33%", "")
	d := daemonStart(t, dir, cfg)
	waitStatus(t, dir, cfg, "backend-1", 20*time.Second, "the first set installed", issued)

	good, _ := os.ReadFile(cfg)
	os.WriteFile(cfg, append(good, []byte("  - name: agent-1\n    profile: agent\n    renew-befor: 2h\n")...), 0o644)
	d.signal(syscall.SIGHUP)
	line := d.waitLog(`new configuration rejected`, 5*time.Second)
	if !strings.Contains(line, "renew-befor") {
		t.Fatalf("rejection does not name the bad key: %s", line)
	}
	if _, err := os.Stat(filepath.Join(dir, "tls", "agent-1.pem")); err == nil {
		t.Fatal("a broken config was half-applied: agent-1 was issued")
	}
	os.WriteFile(cfg, append(good, []byte("  - name: agent-1\n    profile: [agent\n")...), 0o644)
	d.signal(syscall.SIGHUP)
	if line := d.waitLog(`new configuration rejected`, 5*time.Second); !strings.Contains(line, "tlsd.yml: not valid YAML") {
		t.Fatalf("rejection of a YAML syntax error does not name the file and the problem: %s", line)
	}
	// The running configuration still works: a replacement is followed.
	out := filepath.Join(dir, "operator")
	mustRun(t, dir, nil, "issue", "backend-1", "--profile", "backend", "--hosts", "localhost,127.0.0.1",
		"--ca-dir", filepath.Join(dir, "ca"), "--out", out, "--lifetime", "1h")
	for _, f := range []string{"backend-1-key.pem", "backend-1.pem"} {
		if err := os.Rename(filepath.Join(out, f), filepath.Join(dir, "tls", f)); err != nil {
			t.Fatal(err)
		}
	}
	// The file holds the broken configuration: status cannot read it yet.
	d.waitLog(`msg="certificate changed" name=backend-1 reason=external`, 5*time.Second)

	os.WriteFile(cfg, append(good, []byte("  - name: agent-1\n    profile: agent\n")...), 0o644)
	d.signal(syscall.SIGHUP)
	d.waitLog(`configuration reloaded.*certificates=2`, 5*time.Second)
	waitStatus(t, dir, cfg, "agent-1", 10*time.Second, "agent-1 issued after the reload", issued)
	d.noLog(`name=backend-1 reason=`, 300*time.Millisecond)
}

func TestRenewCommand(t *testing.T) {
	dir := t.TempDir()
	cfg := daemonConfig(t, dir, "1h", "33%", "")
	r := mustRun(t, dir, nil, "renew", "backend-1", "--config", cfg)
	if !strings.Contains(r.stdout, "renewed") || !strings.Contains(r.stdout, "generation 1") {
		t.Fatalf("first renew of a missing cert: %q", r.stdout)
	}
	if r := mustRun(t, dir, nil, "renew", "backend-1", "--config", cfg); !strings.Contains(r.stdout, "not due") {
		t.Fatalf("renew before due: %q", r.stdout)
	}
	before, _ := os.ReadFile(filepath.Join(dir, "tls", "backend-1.pem"))
	if r := mustRun(t, dir, nil, "renew", "backend-1", "--config", cfg, "--force", "--dry-run"); !strings.Contains(r.stdout, "dry run") {
		t.Fatalf("dry run: %q", r.stdout)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, "tls", "backend-1.pem")); string(after) != string(before) {
		t.Fatal("--dry-run changed the installed certificate")
	}
	if r := mustRun(t, dir, nil, "renew", "backend-1", "--config", cfg, "--force"); !strings.Contains(r.stdout, "generation 2") {
		t.Fatalf("forced renew: %q", r.stdout)
	}
	if r := run(t, dir, nil, "renew", "nope", "--config", cfg); r.code == 0 || !strings.Contains(r.stderr, `no certificate named "nope"`) || !strings.Contains(r.stderr, "backend-1") {
		t.Fatalf("unknown name: %+v", r)
	}
}

// TestRenewWhileDaemonRunsIsAnnouncedByTheDaemon: `renew --force` installs
// a new generation; the running daemon sees it and announces it as a
// renewal (not as a foreign replacement, and without installing it again).
func TestRenewWhileDaemonRunsIsAnnouncedByTheDaemon(t *testing.T) {
	dir := t.TempDir()
	cfg := daemonConfig(t, dir, "1h", "33%", "")
	d := daemonStart(t, dir, cfg)
	waitStatus(t, dir, cfg, "backend-1", 20*time.Second, "the first set installed", issued)
	r := mustRun(t, dir, nil, "renew", "backend-1", "--config", cfg, "--force")
	if !strings.Contains(r.stdout, "generation 2") {
		t.Fatalf("renew: %q", r.stdout)
	}
	// Announced as a renewal, the daemon's own: not as a foreign set.
	d.waitMetric(renewals("backend-1", "renewal"), 1, 5*time.Second)
	time.Sleep(500 * time.Millisecond)
	if n := d.metric(renewals("backend-1", "external")); n != 0 {
		t.Errorf("the renewed set was also announced as external (%v times)", n)
	}
	if s := waitStatus(t, dir, cfg, "backend-1", 5*time.Second, "generation 2", issued); s.Generation != 2 {
		t.Errorf("status reports generation %d after one forced renewal, want 2 (the daemon installed it again?)", s.Generation)
	}
}

func TestDaemonRefusesToStartOnBusyMetricsPort(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	dir := t.TempDir()
	cfg := daemonConfig(t, dir, "1h", "33%", "")
	r := run(t, dir, nil, "run", "--config", cfg, "--metrics-address", busy.Addr().String())
	if r.code != 1 || !strings.Contains(r.stderr, "metrics-address "+busy.Addr().String()) || !strings.Contains(r.stderr, "address already in use") {
		t.Fatalf("run on a busy metrics port: %+v", r)
	}
	if _, err := os.Stat(filepath.Join(dir, "tls", "backend-1.pem")); err == nil {
		t.Fatal("certificates were issued although the daemon failed to start")
	}
}
