package main

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/internal/testpeer"
)

// daemonPebble is a real Pebble ACME server on loopback.
type daemonPebble struct {
	t         *testing.T
	bin, conf string
	dir       string // its module directory: test certs
	addr      string
	cmd       *exec.Cmd
}

// daemonStartPebble builds Pebble from tools/go.mod and runs it with
// certificates valid for validity, validating HTTP-01 on httpPort.
func daemonStartPebble(t *testing.T, httpPort int, validity time.Duration) *daemonPebble {
	t.Helper()
	return daemonStartPebbleWith(t, httpPort, testpeer.FreePort(t), validity, nil)
}

// daemonStartPebbleWith also sets the TLS-ALPN-01 port and extra Pebble
// settings (external account binding).
func daemonStartPebbleWith(t *testing.T, httpPort, tlsPort int, validity time.Duration, extra map[string]any) *daemonPebble {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("go", "list", "-modfile="+filepath.Join(root, "tools/go.mod"), "-m", "-f", "{{.Dir}}", "github.com/letsencrypt/pebble/v2").Output()
	testpeer.NeedPeer(t, err == nil, fmt.Sprintf("pebble module from tools/go.mod: %v", err))
	p := &daemonPebble{t: t, dir: strings.TrimSpace(string(out)), bin: filepath.Join(t.TempDir(), "pebble")}
	build := exec.Command("go", "build", "-modfile="+filepath.Join(root, "tools/go.mod"), "-o", p.bin, "github.com/letsencrypt/pebble/v2/cmd/pebble")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		testpeer.NeedPeer(t, false, fmt.Sprintf("building pebble: %v\n%s", err, out))
	}
	p.addr = fmt.Sprintf("localhost:%d", testpeer.FreePort(t))
	conf := map[string]any{"pebble": map[string]any{
		"listenAddress":           p.addr,
		"managementListenAddress": fmt.Sprintf("127.0.0.1:%d", testpeer.FreePort(t)),
		"certificate":             filepath.Join(p.dir, "test/certs/localhost/cert.pem"),
		"privateKey":              filepath.Join(p.dir, "test/certs/localhost/key.pem"),
		"httpPort":                httpPort,
		"tlsPort":                 tlsPort,
		"ocspResponderURL":        "",
		"profiles": map[string]any{"default": map[string]any{
			"description": "short-lived for tests", "validityPeriod": int(validity.Seconds()),
		}},
	}}
	for k, v := range extra {
		conf["pebble"].(map[string]any)[k] = v
	}
	b, _ := json.Marshal(conf)
	p.conf = filepath.Join(t.TempDir(), "pebble.json")
	os.WriteFile(p.conf, b, 0o644)
	p.start()
	t.Cleanup(p.stop)
	return p
}

func (p *daemonPebble) start() {
	p.t.Helper()
	p.cmd = exec.Command(p.bin, "-config", p.conf)
	p.cmd.Env = append(os.Environ(), "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0")
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, Timeout: time.Second}
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if resp, err := client.Get("https://" + p.addr + "/dir"); err == nil {
			resp.Body.Close()
			return
		}
	}
	p.t.Fatal("pebble did not come up")
}

func (p *daemonPebble) stop() {
	if p.cmd != nil && p.cmd.Process != nil {
		p.cmd.Process.Signal(syscall.SIGKILL)
		p.cmd.Wait()
		p.cmd = nil
	}
}

// TestDaemonACMEAgainstPebble obtains a certificate from a real Pebble over
// HTTP-01 on a loopback port, renews it, and survives Pebble being down at
// renewal time: failures back off (1s, 2s, 4s: emergency is set below the
// lifetime, so the backoff is not cut short) and the renewal succeeds once
// it is back.
func TestDaemonACMEAgainstPebble(t *testing.T) {
	if testing.Short() {
		t.Skip("needs pebble and half a minute")
	}
	testpeer.NeedPeer(t, testpeer.HasProgram("openssl"), "openssl reads the issued certificate")
	httpPort := testpeer.FreePort(t)
	pebble := daemonStartPebble(t, httpPort, 30*time.Second)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "tlsd.yml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`state-dir: %[1]s/state
metrics-address: ""
renewal:
  before: 25s
  retry-min: 1s
  retry-max: 4s
  emergency: 3s
certificates:
  - name: api
    profile: server
    hosts: [localhost]
    cert-file: %[1]s/tls/api.pem
    key-file: %[1]s/tls/api-key.pem
    ca-file: %[1]s/tls/api-ca.pem
    issuer:
      type: acme
      acme:
        directory: https://%[2]s/dir
        trusted-root: %[3]s
        email: ops@example.com
        challenge: http-01
        listen-host: 127.0.0.1
        http-port: %[4]d
`, dir, pebble.addr, filepath.Join(pebble.dir, "test/certs/pebble.minica.pem"), httpPort)), 0o644)
	d := daemonStart(t, dir, cfg)
	first := waitStatus(t, dir, cfg, "api", 60*time.Second, "the first set installed", issued)
	out, err := exec.Command("openssl", "x509", "-noout", "-issuer", "-in", filepath.Join(dir, "tls/api.pem")).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Pebble") {
		t.Fatalf("issued certificate is not from pebble: %s %v", out, err)
	}
	renewed := waitStatus(t, dir, cfg, "api", 60*time.Second, "a renewed set", func(s renewalState) bool { return s.Serial != first.Serial })
	if fi, err := os.Stat(filepath.Join(dir, "state/acme")); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("certmagic storage is not private: %v %v", fi.Mode(), err)
	}

	pebble.stop()
	var prev time.Time
	var gaps []time.Duration
	for i, retry := range []string{"1s", "2s", "4s"} {
		line := d.waitLog(fmt.Sprintf(`msg="renewal failed" name=api reason=issue .*failures=%d emergency=false retry_in=%s `, i+1, retry), 30*time.Second)
		at := daemonLogTime(t, line)
		if !prev.IsZero() {
			gaps = append(gaps, at.Sub(prev))
		}
		prev = at
	}
	if gaps[0] < time.Second || gaps[1] < 2*time.Second || gaps[1] <= gaps[0] {
		t.Fatalf("attempts while Pebble is down came %v apart, want growing gaps of at least 1s then 2s", gaps)
	}
	pebble.start()
	waitStatus(t, dir, cfg, "api", 60*time.Second, "a set renewed once Pebble is back", func(s renewalState) bool {
		return s.Serial != renewed.Serial && s.Failures == 0
	})
	r := mustRun(t, dir, nil, "status", "--config", cfg)
	if !strings.Contains(r.stdout, "api") {
		t.Fatalf("status after the ACME renewal:\n%s", r.stdout)
	}
}

// TestDaemonACMEWithEABOverTLSALPN obtains a certificate from a Pebble that
// requires external account binding, solving TLS-ALPN-01 on a loopback port.
func TestDaemonACMEWithEABOverTLSALPN(t *testing.T) {
	if testing.Short() {
		t.Skip("needs pebble")
	}
	tlsPort := testpeer.FreePort(t)
	const kid, mac = "kid-1", "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W"
	pebble := daemonStartPebbleWith(t, testpeer.FreePort(t), tlsPort, time.Hour, map[string]any{
		"externalAccountBindingRequired": true,
		"externalAccountMACKeys":         map[string]string{kid: mac},
	})
	dir := t.TempDir()
	cfg := filepath.Join(dir, "tlsd.yml")
	body := fmt.Sprintf(`state-dir: %[1]s/state
metrics-address: ""
renewal:
  retry-min: 1s
  retry-max: 2s
certificates:
  - name: api
    profile: server
    hosts: [localhost]
    cert-file: %[1]s/tls/api.pem
    key-file: %[1]s/tls/api-key.pem
    ca-file: %[1]s/tls/api-ca.pem
    issuer:
      type: acme
      acme:
        directory: https://%[2]s/dir
        trusted-root: %[3]s
        challenge: tls-alpn-01
        listen-host: 127.0.0.1
        tls-alpn-port: %[4]d
        eab-key-id: %[5]s
        eab-mac-key: %[6]s
`, dir, pebble.addr, filepath.Join(pebble.dir, "test/certs/pebble.minica.pem"), tlsPort, kid, mac)
	os.WriteFile(cfg, []byte(body), 0o644)

	// Without the binding Pebble refuses the account: the failure is
	// logged and retried, never installed.
	noEAB := filepath.Join(dir, "no-eab.yml")
	os.WriteFile(noEAB, []byte(strings.NewReplacer("        eab-key-id: "+kid+"\n", "", "        eab-mac-key: "+mac+"\n", "").Replace(body)), 0o644)
	r := run(t, dir, nil, "renew", "api", "--config", noEAB)
	if r.code == 0 || !strings.Contains(r.stderr, "externalAccountRequired") || !strings.Contains(r.stderr, "requires newAccount requests must include a value for the 'externalAccountBinding' field") {
		t.Fatalf("issuing without EAB from a Pebble that requires it: %+v", r)
	}

	daemonStart(t, dir, cfg)
	waitStatus(t, dir, cfg, "api", 60*time.Second, "the set issued with the binding", issued)
	mustRun(t, dir, nil, "status", "--config", cfg)
}

// daemonLogTime is the time= field of a daemon log line.
func daemonLogTime(t *testing.T, line string) time.Time {
	t.Helper()
	f, _, _ := strings.Cut(strings.TrimPrefix(line, "time="), " ")
	at, err := time.Parse(time.RFC3339Nano, f)
	if err != nil {
		t.Fatalf("log line without a time: %q: %v", line, err)
	}
	return at
}
