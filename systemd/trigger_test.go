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
	trig := NewSensuBackend(yml)
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
		{"file not in backend.yml", Batch{stray}, true, "not named in", ""},
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
	d := NewSensuBackend(yml).Decide(Batch{{Name: "x", Files: []string{"/nowhere.pem"}}})
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

func FuzzParseBackendConfig(f *testing.F) {
	f.Add([]byte("cert-file: /etc/sensu/tls/backend.pem\nagent-port: 8081\n"))
	f.Add([]byte("etcd-listen-client-urls: [a, b]\nx: {y: z}\n"))
	f.Add([]byte("- not a map\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ParseBackendConfig(data)
		if err != nil {
			return
		}
		// Whatever the content, deriving probe addresses must not panic.
		_ = cfg.apiAddress()
		_ = cfg.agentAddress()
		_ = cfg.keysFor("/x", backendRestartKeys)
	})
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
		d := NewSensuBackend(yml).Decide(Batch{{Name: "backend", NewSerial: "0A", Files: []string{"/etc/sensu/tls/backend.pem"}}})
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
