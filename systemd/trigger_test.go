package systemd

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sensu-tlsd/sensu-tlsd/internal/event"
)

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestSensuBackendDecisions(t *testing.T) {
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	yml := p("backend.yml")
	writeFile(t, yml, strings.Join([]string{
		"cert-file: " + p("backend.pem"),
		"key-file: " + p("backend-key.pem"),
		"trusted-ca-file: " + p("ca.pem"),
		"etcd-cert-file: " + p("etcd.pem"),
		"etcd-key-file: " + p("etcd-key.pem"),
		"etcd-trusted-ca-file: " + p("etcd-ca.pem"),
		"etcd-peer-cert-file: " + p("peer.pem"),
		"etcd-peer-key-file: " + p("peer-key.pem"),
		"api-listen-address: '[::]:8080'",
		"agent-port: 8081",
		"etcd-listen-client-urls: [https://127.0.0.1:2379]",
	}, "\n")+"\n")
	trig := NewSensuBackend(yml, nil)
	backend := event.Change{Name: "backend", NewSerial: "0A", CertFile: p("backend.pem"), CAFile: p("ca.pem"),
		Files: []string{p("backend.pem"), p("backend-key.pem"), p("ca.pem")}}
	etcd := event.Change{Name: "etcd", NewSerial: "0B", CertFile: p("etcd.pem"), Files: []string{p("etcd.pem"), p("etcd-key.pem")}}
	peer := event.Change{Name: "peer", NewSerial: "0C", Files: []string{p("peer.pem"), p("peer-key.pem")}}
	caOnly := event.Change{Name: "backend", Files: []string{p("ca.pem")}}
	stray := event.Change{Name: "other", Files: []string{p("elsewhere.pem")}}

	for _, c := range []struct {
		name   string
		batch  Batch
		act    bool
		reason string
		serial string
	}{
		{"backend cert, key, CA", Batch{backend}, true, "cert-file", "0A"},
		{"backend and etcd together", Batch{etcd, backend}, true, "cert-file", "0A"},
		{"only etcd client", Batch{etcd}, false, "etcd re-reads", ""},
		{"only etcd client and peer", Batch{etcd, peer}, false, "etcd-peer-cert-file", ""},
		{"trusted CA only", Batch{caOnly}, true, "trusted-ca-file", ""},
		{"file not in backend.yml", Batch{stray}, false, "sensu-backend does not read " + p("elsewhere.pem"), ""},
	} {
		d := trig.Decide(c.batch)
		if d.Act != c.act || !strings.Contains(d.Reason, c.reason) {
			t.Errorf("%s: act=%v reason %q; want act=%v and a reason with %q", c.name, d.Act, d.Reason, c.act, c.reason)
		}
		if got := strings.Join(d.Expect.Serials, ","); got != c.serial {
			t.Errorf("%s: expects serials %q, want %q", c.name, got, c.serial)
		}
		if len(d.Checks) != 3 || d.Checks[0].String() != "GET https://127.0.0.1:8080/health" || d.Checks[2].String() != "TLS 127.0.0.1:8081" {
			t.Errorf("%s: checks %v", c.name, d.Checks)
		}
	}

	// Rewriting backend.yml (for example the ws→wss cutover) needs a
	// restart even when only etcd files changed; the next identical batch
	// then needs nothing again.
	appendTo(t, yml, "insecure-skip-tls-verify: false\n")
	if d := trig.Decide(Batch{etcd}); !d.Act || !strings.Contains(d.Reason, "rewritten") {
		t.Fatalf("after rewriting backend.yml: act=%v reason %q", d.Act, d.Reason)
	}
	if d := trig.Decide(Batch{etcd}); d.Act {
		t.Fatalf("second etcd-only batch acts: %q", d.Reason)
	}
}

func TestSensuBackendPlaintextChecks(t *testing.T) {
	yml := filepath.Join(t.TempDir(), "backend.yml")
	writeFile(t, yml, "api-listen-address: 10.0.0.5:9080\nagent-host: 0.0.0.0\nagent-port: 9081\n")
	d := NewSensuBackend(yml, nil).Decide(Batch{{Name: "x", Files: []string{"/nowhere.pem"}}})
	var got []string
	for _, c := range d.Checks {
		got = append(got, c.String())
	}
	if strings.Join(got, " | ") != "GET http://10.0.0.5:9080/health | TCP 127.0.0.1:9081" {
		t.Fatalf("plaintext checks %q", got)
	}
}

func appendTo(t *testing.T, path, text string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
}

// TestSensuBackendUnreadableConfigKeepsTheGate: without backend.yml the
// preset still restarts, and checks sensu-backend's default listeners for
// the new serial instead of passing blind; the reason names the file and
// the fix.
func TestSensuBackendUnreadableConfigKeepsTheGate(t *testing.T) {
	dir := t.TempDir()
	broken := filepath.Join(dir, "broken.yml")
	writeFile(t, broken, "cert-file: [unclosed\n")
	for _, yml := range []string{filepath.Join(dir, "missing.yml"), broken} {
		d := NewSensuBackend(yml, nil).Decide(Batch{{Name: "backend", NewSerial: "0A", Files: []string{"/etc/sensu/tls/backend.pem"}}})
		if !d.Act || !strings.Contains(d.Reason, yml) || !strings.Contains(d.Reason, "fix: make "+yml+" readable") || !strings.Contains(d.Reason, "sensu.backend-config") {
			t.Errorf("%s: act=%v reason %q", yml, d.Act, d.Reason)
		}
		var got []string
		for _, c := range d.Checks {
			got = append(got, c.String())
		}
		if strings.Join(got, " | ") != "GET https://127.0.0.1:8080/health | TLS 127.0.0.1:8080 | TLS 127.0.0.1:8081" {
			t.Errorf("%s: checks %q, want sensu-backend's default listeners", yml, got)
		}
		if strings.Join(d.Expect.Serials, ",") != "0A" {
			t.Errorf("%s: expects %q, want the new serial", yml, d.Expect.Serials)
		}
	}
}

func checkNames(d Decision) string {
	var got []string
	for _, c := range d.Checks {
		got = append(got, c.String())
	}
	return strings.Join(got, " | ")
}

// TestSensuBackendDuplicateCertFileGatesOnItsPorts: a backend.yml that
// sets cert-file twice is read as Sensu reads it (the last one counts), so
// the gate probes the listeners the file names, not 8080 and 8081, and
// expects the new serial of the certificate at the last cert-file. The
// file at the first cert-file, which Sensu ignores, restarts nothing.
func TestSensuBackendDuplicateCertFileGatesOnItsPorts(t *testing.T) {
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	yml := p("backend.yml")
	writeFile(t, yml, "cert-file: "+p("old.pem")+"\nkey-file: "+p("backend-key.pem")+"\n"+
		"api-listen-address: 127.0.0.1:9080\nagent-host: 127.0.0.1\nagent-port: 9081\n"+
		"cert-file: "+p("backend.pem")+"\n")
	trig := NewSensuBackend(yml, nil)
	d := trig.Decide(Batch{{Name: "backend", NewSerial: "0A", CertFile: p("backend.pem"), Files: []string{p("backend.pem"), p("backend-key.pem")}}})
	if !d.Act || !strings.Contains(d.Reason, "cert-file, key-file changed (set in "+yml+")") {
		t.Fatalf("act=%v reason %q", d.Act, d.Reason)
	}
	if got := checkNames(d); got != "GET https://127.0.0.1:9080/health | TLS 127.0.0.1:9080 | TLS 127.0.0.1:9081" {
		t.Fatalf("checks %q, want the listeners backend.yml names", got)
	}
	if strings.Join(d.Expect.Serials, ",") != "0A" {
		t.Fatalf("expects %q, want the new serial", d.Expect.Serials)
	}
	if d := trig.Decide(Batch{{Name: "old", Files: []string{p("old.pem")}}}); d.Act || !strings.Contains(d.Reason, "does not read "+p("old.pem")) {
		t.Fatalf("the overridden cert-file: act=%v reason %q", d.Act, d.Reason)
	}
}

// TestSensuBackendReadsItsEnvFiles: what sensu-backend reads is
// backend.yml and its environment files. At the cutover's first phases
// backend.yml names no certificate (the proxy serves it), so a renewal
// restarts nothing; once the environment file names the certificate, a
// renewal restarts, and a rewrite of the environment file does too. An
// environment file that cannot be read is the one case left for the safe
// restart.
func TestSensuBackendReadsItsEnvFiles(t *testing.T) {
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	yml, env := p("backend.yml"), p("sensu-backend")
	writeFile(t, yml, "api-listen-address: 127.0.0.1:18080\nagent-host: 127.0.0.1\nagent-port: 18081\n")
	trig := NewSensuBackend(yml, []string{env, p("sysconfig-sensu-backend")})
	renewal := Batch{{Name: "backend", NewSerial: "0A", CertFile: p("backend.pem"), Files: []string{p("backend.pem"), p("backend-key.pem"), p("ca.pem")}}}

	d := trig.Decide(renewal)
	if d.Act || !strings.Contains(d.Reason, "sensu-backend does not read "+p("backend.pem")+", "+p("backend-key.pem")+", "+p("ca.pem")+" (named by no setting in "+yml+")") {
		t.Fatalf("plaintext backend: act=%v reason %q", d.Act, d.Reason)
	}

	writeFile(t, env, "SENSU_BACKEND_CERT_FILE="+p("backend.pem")+"\nSENSU_BACKEND_KEY_FILE=\""+p("backend-key.pem")+"\"\nSENSU_BACKEND_TRUSTED_CA_FILE=\n")
	if d := trig.Decide(renewal); !d.Act {
		t.Fatalf("after the environment file appeared: act=%v reason %q", d.Act, d.Reason)
	}
	d = trig.Decide(renewal)
	if !d.Act || !strings.Contains(d.Reason, "cert-file, key-file changed (set in "+env+" SENSU_BACKEND_CERT_FILE, "+env+" SENSU_BACKEND_KEY_FILE)") || strings.Contains(d.Reason, "rewritten") {
		t.Fatalf("environment file names the certificate: act=%v reason %q", d.Act, d.Reason)
	}
	if got := checkNames(d); got != "GET https://127.0.0.1:18080/health | TLS 127.0.0.1:18080 | TLS 127.0.0.1:18081" {
		t.Fatalf("checks %q", got)
	}
	if strings.Join(d.Expect.Serials, ",") != "0A" {
		t.Fatalf("expects %q", d.Expect.Serials)
	}
	// The empty SENSU_BACKEND_TRUSTED_CA_FILE is unset to viper: ca.pem is
	// still not read, but cert-file alone restarts.
	if d := trig.Decide(Batch{{Name: "ca", Files: []string{p("ca.pem")}}}); d.Act {
		t.Fatalf("a CA named by an empty variable: act=%v reason %q", d.Act, d.Reason)
	}
	// The config writer hands on the environment file it rewrote.
	if d := trig.Decide(Batch{{Name: "backend", Files: []string{env}}}); !d.Act || !strings.Contains(d.Reason, env+" was rewritten") {
		t.Fatalf("environment file rewritten: act=%v reason %q", d.Act, d.Reason)
	}

	unreadable := p("unreadable")
	if err := os.Mkdir(unreadable, 0o755); err != nil {
		t.Fatal(err)
	}
	d = NewSensuBackend(yml, []string{unreadable}).Decide(renewal)
	if !d.Act || !strings.Contains(d.Reason, "restarting to be safe") || !strings.Contains(d.Reason, "fix: make "+unreadable+" readable") {
		t.Fatalf("unreadable environment file: act=%v reason %q", d.Act, d.Reason)
	}
}
