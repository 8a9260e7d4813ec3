package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sensu-tlsd/sensu-tlsd/internal/testpeer"
)

// lintOpenSSLCert makes a self-signed certificate with openssl for the SAN
// and extended key usage given, and returns the cert and key paths.
func lintOpenSSLCert(t *testing.T, dir, name, san, eku string) (string, string) {
	t.Helper()
	testpeer.NeedPeer(t, testpeer.HasProgram("openssl"), "openssl not on PATH (apt-get install openssl)")
	cert, key := filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
	cmd := exec.Command("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
		"-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN="+name,
		"-addext", "subjectAltName="+san, "-addext", "extendedKeyUsage="+eku)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("openssl: %v\n%s", err, out)
	}
	return cert, key
}

func lintWrite(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLintCommandFindsErrorsWithLines(t *testing.T) {
	dir := t.TempDir()
	apiCert, apiKey := lintOpenSSLCert(t, dir, "api", "DNS:backend-1.example.com", "serverAuth")
	etcdCert, etcdKey := lintOpenSSLCert(t, dir, "etcd", "IP:127.0.0.1", "serverAuth")
	peerCert, peerKey := lintOpenSSLCert(t, dir, "peer", "DNS:localhost", "serverAuth,clientAuth")
	backend := lintWrite(t, filepath.Join(dir, "backend.yml"), `---
# backend
state-dir: /var/lib/sensu/sensu-backend
api-url: https://sensu.example.com:8080
cert-file: `+apiCert+`
key-file: `+apiKey+`
etcd_trusted_ca_file: /etc/sensu/ca.pem
etcd-listen-client-urls: https://127.0.0.1:2379
etcd-advertise-client-urls: https://127.0.0.1:2379
etcd-cert-file: `+etcdCert+`
etcd-key-file: `+etcdKey+`
etcd-initial-advertise-peer-urls: https://localhost:2380
etcd-listen-peer-urls: https://localhost:2380
etcd-peer-cert-file: `+peerCert+`
etcd-peer-key-file: `+peerKey+`
`)
	agent := lintWrite(t, filepath.Join(dir, "agent.yml"), `backend-url:
  - wss://backend-1.example.com:8081
  - ws://backend-2.example.com:8081
trusted-ca-file: `+filepath.Join(dir, "missing-ca.pem")+`
insecure-skip-tls-verify: true
`)
	r := run(t, dir, nil, "lint", "--user", "root", backend, agent)
	if r.code != 2 {
		t.Fatalf("exit %d, want 2 (errors)\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{
		backend + `:5: error: cert-file: ` + apiCert + ` does not cover host "sensu.example.com"`,
		backend + `:7: error: etcd_trusted_ca_file: unknown key; Sensu ignores it without a word (fix: rename it to etcd-trusted-ca-file)`,
		backend + `:10: error: etcd-cert-file: ` + etcdCert + ` lacks the clientAuth extended key usage`,
		// etcd checks a peer's certificate against the address it
		// connects from: 127.0.0.1 over loopback.
		backend + `:14: error: etcd-peer-cert-file: ` + peerCert + ` does not cover host "127.0.0.1" that peers dial or that this member connects from`,
		agent + `:1: error: backend-url: mixed ws:// and wss:// entries`,
		agent + `:4: error: trusted-ca-file: ` + filepath.Join(dir, "missing-ca.pem") + ` does not exist`,
		agent + `:5: error: insecure-skip-tls-verify: certificate verification is off`,
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}
}

func TestLintCommandExitCodes(t *testing.T) {
	dir := t.TempDir()
	clean := lintWrite(t, filepath.Join(dir, "agent.yml"), "backend-url:\n  - ws://127.0.0.1:8081\nlog-level: warn\n")
	if r := run(t, dir, nil, "lint", clean); r.code != 0 || !strings.Contains(r.stdout, "1 file(s) clean") {
		t.Errorf("clean file: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	warn := lintWrite(t, filepath.Join(dir, "w.yml"), "backend-url: [wss://127.0.0.1:8081]\nfrobnicate: 1\n")
	if r := run(t, dir, nil, "lint", warn); r.code != 1 || !strings.Contains(r.stdout, warn+":2: warning: frobnicate") {
		t.Errorf("warnings only: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := run(t, dir, nil, "lint", filepath.Join(dir, "nope.yml")); r.code != 3 || !strings.Contains(r.stderr, "nope.yml") {
		t.Errorf("missing file: exit %d\n%s", r.code, r.stderr)
	}
	if r := run(t, dir, nil, "lint"); r.code != 3 {
		t.Errorf("no file: exit %d", r.code)
	}
	if r := run(t, dir, nil, "lint", "--role", "frontend", clean); r.code != 3 {
		t.Errorf("bad role: exit %d", r.code)
	}
}

func TestLintCommandUnknownUser(t *testing.T) {
	dir := t.TempDir()
	f := lintWrite(t, filepath.Join(dir, "agent.yml"), "backend-url: [ws://127.0.0.1:8081]\n")
	if r := run(t, dir, nil, "lint", "--user", "no-such-user-xyz", f); r.code != 3 || !strings.Contains(r.stderr, "no such account") {
		t.Errorf("unknown --user: exit %d %s", r.code, r.stderr)
	}
}

// Once migrate's phase 4 placed the agent binding's listeners (open-source
// build), agent.yml's ws:// to the node's sensu-tlsd is info, not
// plaintext; without them the same file is an error.
func TestLintCommandKnowsTheAgentUplink(t *testing.T) {
	dir := t.TempDir()
	cert, key := lintOpenSSLCert(t, dir, "agent", "DNS:web-1", "clientAuth")
	agent := lintWrite(t, filepath.Join(dir, "agent.yml"), "name: web-1\nbackend-url: [ws://127.0.0.1:8091]\ncert-file: "+cert+"\nkey-file: "+key+"\n")
	cfg := lintWrite(t, filepath.Join(dir, "tlsd.yml"), "state-dir: "+filepath.Join(dir, "state")+"\n")
	if r := run(t, dir, nil, "lint", "--user", "root", "--config", cfg, agent); r.code != 2 || !strings.Contains(r.stdout, "every backend-url is ws://") {
		t.Fatalf("without the binding's listeners: exit %d, want 2 (plaintext)\n%s%s", r.code, r.stdout, r.stderr)
	}
	dropIn := filepath.Join(dir, "state", "listeners.d", "migrate-enforce.yml")
	if err := os.MkdirAll(filepath.Dir(dropIn), 0o700); err != nil {
		t.Fatal(err)
	}
	lintWrite(t, dropIn, "listeners: []\n")
	r := run(t, dir, nil, "lint", "--user", "root", "--config", cfg, agent)
	if r.code != 0 || !strings.Contains(r.stdout, agent+":2: info: backend-url: ws://127.0.0.1:8091 is this node's sensu-tlsd agent uplink") ||
		!strings.Contains(r.stdout, "cert-file, key-file and trusted-ca-file are not used on this hop") {
		t.Fatalf("with the binding's listeners: exit %d, want 0 and the uplink as info\n%s%s", r.code, r.stdout, r.stderr)
	}
}
