package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/internal/pki"
	"github.com/sensu-tlsd/sensu-tlsd/internal/testca"
	"github.com/sensu-tlsd/sensu-tlsd/internal/testpeer"
)

// gateFixture is the corpus of bad certificates with a good pair and the
// CA bundle, all under one directory.
type gateFixture struct {
	dir, caFile string
	ca          *testca.CA
	bad         []testca.Bad
	good        testca.Issued
}

func newGateFixture(t *testing.T) *gateFixture {
	t.Helper()
	f := &gateFixture{dir: t.TempDir(), ca: testca.New(t)}
	f.caFile = filepath.Join(f.dir, "ca.pem")
	if err := os.WriteFile(f.caFile, f.ca.PEM, 0o644); err != nil {
		t.Fatal(err)
	}
	f.bad = testca.Corpus(t, f.ca, []string{"localhost"})
	f.good = f.ca.Issue(t, testca.Leaf{CN: "localhost", Hosts: []string{"localhost"}})
	return f
}

// pair is where bad certificate i (or a good one) is written.
func (f *gateFixture) pair(i int) (cert, key string) {
	return filepath.Join(f.dir, fmt.Sprintf("c%d.pem", i)), filepath.Join(f.dir, fmt.Sprintf("c%d-key.pem", i))
}

// TestEveryEntryPointRefusesTheCorpus runs each class of bad certificate
// through the CLI's certificate readers: the standalone proxy's start,
// status and check. Each refuses it with the file, the reason and the fix.
func TestEveryEntryPointRefusesTheCorpus(t *testing.T) {
	f := newGateFixture(t)
	for i, bad := range f.bad {
		t.Run(bad.Name, func(t *testing.T) {
			cf, kf := f.pair(i)
			bad.Write(t, cf, kf)
			says := func(what, out string, name string) {
				t.Helper()
				for _, want := range []string{name, bad.Reason, bad.Fix} {
					if !strings.Contains(out, want) {
						t.Errorf("%s: output does not say %q:\n%s", what, want, out)
					}
				}
			}
			r := run(t, "", nil, "proxy", "--mode", "terminate", "--listen", "127.0.0.1:0", "--target", "127.0.0.1:1", "--cert", cf, "--key", kf)
			if r.code == 0 || strings.Contains(r.stdout, "listening on") {
				t.Errorf("proxy started on a refused certificate: exit %d\n%s%s", r.code, r.stdout, r.stderr)
			}
			says("proxy start", r.stderr, cf)

			args := []string{cf, "--key", kf, "--ca", f.caFile, "--profile", "server", "--hosts", "localhost"}
			r = run(t, "", nil, append([]string{"status"}, args...)...)
			if r.code != 1 {
				t.Errorf("status: exit %d, want 1\n%s", r.code, r.stdout)
			}
			says("status", r.stdout, filepath.Base(cf))

			r = run(t, "", nil, append([]string{"check"}, args...)...)
			if r.code != 2 { // there and wrong, the oversized file too: CRITICAL
				t.Errorf("check: exit %d, want 2\n%s", r.code, r.stdout)
			}
			says("check", strings.SplitN(r.stdout, "\n", 2)[0], filepath.Base(cf))
		})
	}
}

// TestCheckWithoutProfileShowsUsagesAndSANs: a codeSigning-only
// certificate given alone is not judged, but its usages and SANs are
// printed for a person to judge; --profile judges it.
func TestCheckWithoutProfileShowsUsagesAndSANs(t *testing.T) {
	f := newGateFixture(t)
	var codeSigning testca.Bad
	for _, b := range f.bad {
		if b.Name == "codeSigning only" {
			codeSigning = b
		}
	}
	cf, kf := f.pair(0)
	codeSigning.Write(t, cf, kf)
	r := run(t, "", nil, "check", cf, "--ca", f.caFile)
	if !strings.Contains(r.stdout, "# ? c0.pem: usages codeSigning, SANs localhost: not checked") {
		t.Errorf("check without --profile does not show the usages and SANs:\n%s", r.stdout)
	}
	r = run(t, "", nil, "status", cf, "--ca", f.caFile)
	if !strings.Contains(r.stdout, "? c0.pem: usages codeSigning, SANs localhost: not checked") {
		t.Errorf("status without --profile does not show the usages and SANs:\n%s", r.stdout)
	}
	r = run(t, "", nil, "check", cf, "--ca", f.caFile, "--profile", "backend")
	if r.code != 2 || !strings.Contains(r.stdout, "profile backend needs serverAuth, clientAuth but the certificate has only codeSigning") {
		t.Errorf("check --profile backend: exit %d\n%s", r.code, r.stdout)
	}
}

// TestProxyHotReloadKeepsTheLastGoodCertificate: every bad certificate
// moved over the served files is refused with a warning naming the file,
// the reason and the fix, and the good one keeps being served.
func TestProxyHotReloadKeepsTheLastGoodCertificate(t *testing.T) {
	f := newGateFixture(t)
	cf, kf := f.pair(0)
	f.good.Write(t, cf, kf)
	p := proxyStart(t, "--mode", "terminate", "--target", "127.0.0.1:1", "--cert", cf, "--key", kf)
	pool := x509.NewCertPool()
	pool.AddCert(f.ca.Cert)
	served := func() string {
		c, err := tls.Dial("tcp", p.addr, &tls.Config{RootCAs: pool, ServerName: "localhost"})
		if err != nil {
			t.Fatalf("handshake: %v", err)
		}
		defer c.Close()
		return pki.SerialHex(c.ConnectionState().PeerCertificates[0])
	}
	good := served()
	for _, bad := range f.bad {
		seen := len(p.stderrText())
		bad.Write(t, cf, kf)
		testpeer.WaitFor(t, 5*time.Second, bad.Name+" refused", func() bool {
			for _, l := range strings.Split(p.stderrText()[seen:], "\n") {
				if strings.Contains(l, "level=WARN") && strings.Contains(l, "were refused") &&
					strings.Contains(l, cf) && strings.Contains(l, bad.Reason) && strings.Contains(l, bad.Fix) {
					return true
				}
			}
			return false
		})
		if got := served(); got != good {
			t.Fatalf("after %s the proxy serves serial %s, want the last good %s", bad.Name, got, good)
		}
	}
	if strings.Count(p.stderrText(), "certificate reloaded") != 0 {
		t.Fatalf("a bad certificate was reloaded:\n%s", p.stderrText())
	}
}

// TestDaemonFilesIssuerRefusesTheCorpus: the daemon following files
// another tool writes refuses each bad set at start and when it replaces
// a good one, naming the file, the reason and the fix, and announces
// nothing; status and check keep reporting the files.
func TestDaemonFilesIssuerRefusesTheCorpus(t *testing.T) {
	f := newGateFixture(t)
	var certs strings.Builder
	for i, bad := range f.bad {
		cf, kf := f.pair(i)
		bad.Write(t, cf, kf)
		fmt.Fprintf(&certs, `  - name: gate-%d
    profile: server
    hosts: [localhost]
    cert-file: %s
    key-file: %s
    ca-file: %s
    trusted-ca: %s
    issuer: {type: files}
`, i, cf, kf, f.caFile, f.caFile)
	}
	cfg := filepath.Join(f.dir, "tlsd.yml")
	conf := fmt.Sprintf("state-dir: %s/state\nmetrics-address: 127.0.0.1:0\nrenewal: {retry-min: 1s, retry-max: 2s, jitter: 0s}\ncertificates:\n%s", f.dir, certs.String())
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	d := daemonStart(t, f.dir, cfg)
	refused := func(phase string, msgs ...string) {
		t.Helper()
		for i, bad := range f.bad {
			cf, _ := f.pair(i)
			waitAnyLog(t, d, 15*time.Second, phase+" "+bad.Name, func(l string) bool {
				said := false
				for _, m := range msgs {
					said = said || strings.Contains(l, m)
				}
				return said && strings.Contains(l, fmt.Sprintf("name=gate-%d ", i)) &&
					strings.Contains(l, cf) && strings.Contains(l, bad.Reason) && strings.Contains(l, bad.Fix)
			})
		}
	}
	// A set that does not read is a failed attempt; one that reads is
	// also refused as the set on disk.
	refused("start", `msg="the certificate set on disk is not valid for its plan`, `msg="renewal failed"`)
	r := run(t, "", nil, "check", "--config", cfg)
	if r.code != 2 || !strings.Contains(r.stdout, "file is larger than 1 MiB") {
		t.Errorf("check --config: exit %d, want 2 (the oversized file is there and wrong)\n%s", r.code, r.stdout)
	}

	// Good sets in place, then the bad ones moved over them.
	for i := range f.bad {
		cf, kf := f.pair(i)
		f.ca.Issue(t, testca.Leaf{CN: "localhost", Hosts: []string{"localhost"}}).Write(t, cf, kf)
		d.waitLog(fmt.Sprintf(`msg="consumers took the certificate" name=gate-%d `, i), 15*time.Second)
	}
	changed := strings.Count(strings.Join(d.lines(), "\n"), `msg="certificate changed"`)
	for i, bad := range f.bad {
		cf, kf := f.pair(i)
		bad.Write(t, cf, kf)
	}
	refused("reload", `msg="replacement on disk rejected`)
	time.Sleep(2 * time.Second) // past the grace period
	if n := strings.Count(strings.Join(d.lines(), "\n"), `msg="certificate changed"`); n != changed {
		t.Fatalf("%d changes announced after the bad sets were moved in", n-changed)
	}
}

// TestKeyModesArePutRightOrReported: a key another tool wrote with 0644
// is warned about and reported by status; the local CA's 0644 key is put
// back to 0600 by issue, which says so.
func TestKeyModesArePutRightOrReported(t *testing.T) {
	f := newGateFixture(t)
	cf, kf := f.pair(0)
	f.good.Write(t, cf, kf)
	if err := os.Chmod(kf, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(f.dir, "tlsd.yml")
	conf := fmt.Sprintf(`state-dir: %[1]s/state
metrics-address: 127.0.0.1:0
certificates:
  - name: followed
    profile: server
    hosts: [localhost]
    cert-file: %[2]s
    key-file: %[3]s
    ca-file: %[4]s
    trusted-ca: %[4]s
    issuer: {type: files}
`, f.dir, cf, kf, f.caFile)
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	d := daemonStart(t, f.dir, cfg)
	line := d.waitLog(`level=WARN msg="the private key another tool wrote is readable by every user`, 15*time.Second)
	for _, want := range []string{kf, "mode 0644", "chmod 0600"} {
		if !strings.Contains(line, want) {
			t.Errorf("warning %q does not say %q", line, want)
		}
	}
	if fi, _ := os.Stat(kf); fi.Mode().Perm() != 0o644 {
		t.Errorf("a key another tool owns was changed to %04o", fi.Mode().Perm())
	}
	r := run(t, "", nil, "status", "--config", cfg)
	if r.code != 1 || !strings.Contains(r.stdout, "file modes: "+kf+": mode 0644") {
		t.Errorf("status: exit %d, want the key mode reported\n%s", r.code, r.stdout)
	}

	state := t.TempDir()
	mustRun(t, "", nil, "--state-dir", state, "ca", "init")
	caKey := filepath.Join(state, "ca-key.pem")
	if err := os.Chmod(caKey, 0o644); err != nil {
		t.Fatal(err)
	}
	r = mustRun(t, "", nil, "--state-dir", state, "issue", "backend-1", "--profile", "backend", "--hosts", "localhost")
	if !strings.Contains(r.stderr, caKey+" had mode 0644, readable by every user; changed it to 0600") {
		t.Errorf("issue did not say it fixed the CA key's mode:\n%s", r.stderr)
	}
	if fi, _ := os.Stat(caKey); fi.Mode().Perm() != 0o600 {
		t.Errorf("ca-key.pem is %04o after issue", fi.Mode().Perm())
	}
	// An oversized CA file is refused with the limit.
	if err := os.WriteFile(filepath.Join(state, "ca.pem"), make([]byte, pki.MaxPEMFileBytes+1), 0o644); err != nil {
		t.Fatal(err)
	}
	r = run(t, "", nil, "--state-dir", state, "issue", "backend-2", "--profile", "backend", "--hosts", "localhost")
	if r.code == 0 || !strings.Contains(r.stderr, filepath.Join(state, "ca.pem")+": file is larger than 1 MiB") {
		t.Errorf("issue from an oversized ca.pem: exit %d\n%s", r.code, r.stderr)
	}
}

// waitAnyLog waits for any daemon log line, matched or not before, for
// which match is true.
func waitAnyLog(t *testing.T, d *daemonProc, within time.Duration, what string, match func(string) bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		for _, l := range d.lines() {
			if match(l) {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("the daemon never logged %s", what)
}

// TestDaemonPutsRightTheKeysItOwns: an installed key and the local CA's
// key made readable by every user are put back to 0600 at the next start,
// each with a warning saying what changed.
func TestDaemonPutsRightTheKeysItOwns(t *testing.T) {
	dir := t.TempDir()
	cfg := daemonConfig(t, dir, "1h", "20m", "")
	d := daemonStart(t, dir, cfg)
	d.waitLog(`msg="consumers took the certificate" name=backend-1`, 30*time.Second)
	d.signal(syscall.SIGTERM)
	<-d.done
	key, caKey := filepath.Join(dir, "tls", "backend-1-key.pem"), filepath.Join(dir, "ca", "ca-key.pem")
	for _, k := range []string{key, caKey} {
		if err := os.Chmod(k, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	d = daemonStart(t, dir, cfg)
	for _, what := range []string{"installed key", "local CA key"} {
		line := d.waitLog(`level=WARN msg="the `+what+` was readable by every user; sensu-tlsd owns it and changed its mode"`, 30*time.Second)
		if !strings.Contains(line, "old_mode=0644 new_mode=0600") {
			t.Errorf("warning %q does not say what changed", line)
		}
	}
	for _, k := range []string{key, caKey} {
		if fi, err := os.Stat(k); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v (%v), want 0600", k, fi.Mode().Perm(), err)
		}
	}
}
