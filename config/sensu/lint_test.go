package sensu

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeCert writes a self-signed certificate for hosts with the given
// extended key usages and returns its path.
func writeCert(t *testing.T, dir, name string, hosts []string, usages ...x509.ExtKeyUsage) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		ExtKeyUsage:  usages,
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name+".pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func lintString(t *testing.T, name, src string, role Role) []Finding {
	t.Helper()
	d, err := Parse(name, []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return Lint(d, role, LintOptions{User: "root"})
}

// expectFinding asserts exactly one finding on key at line with the
// severity and a message containing what.
func expectFinding(t *testing.T, fs []Finding, line int, sev Severity, key, what, fix string) {
	t.Helper()
	for _, f := range fs {
		if f.Key == key && strings.Contains(f.What, what) {
			if f.Line != line || f.Severity != sev || !strings.Contains(f.Fix, fix) {
				t.Errorf("finding %v: want line %d, %s, fix containing %q", f, line, sev, fix)
			}
			return
		}
	}
	t.Errorf("no finding on %s containing %q in %v", key, what, fs)
}

func TestLintUnknownKeysSuggest(t *testing.T) {
	fs := lintString(t, "backend.yml", "state-dir: /x\ncert_file: /a.pem\ncertfile: /a.pem\nlog-levle: info\nbackend-url: [ws://x]\nfrobnicate: 1\n", Backend)
	expectFinding(t, fs, 2, Error, "cert_file", "unknown key", "rename it to cert-file")
	expectFinding(t, fs, 3, Error, "certfile", "unknown key", "rename it to cert-file")
	expectFinding(t, fs, 4, Warning, "log-levle", "unknown key", "rename it to log-level")
	expectFinding(t, fs, 5, Warning, "backend-url", "agent setting", "move it to agent.yml")
	expectFinding(t, fs, 6, Warning, "frobnicate", "unknown key", "remove it")
}

func TestLintHalfPairs(t *testing.T) {
	fs := lintString(t, "backend.yml", "api-url: http://x:8080\ncert-file: /c.pem\ndashboard-key-file: /k.pem\n", Backend)
	expectFinding(t, fs, 2, Error, "cert-file", "key-file is not", "set key-file")
	expectFinding(t, fs, 3, Error, "dashboard-key-file", "dashboard-cert-file is not", "set dashboard-cert-file")
	fs = lintString(t, "agent.yml", "backend-url: [wss://x:8081]\ntrusted-ca-file: /ca.pem\nkey-file: /k.pem\n", Agent)
	expectFinding(t, fs, 3, Error, "key-file", "cert-file is not", "set cert-file")
}

func TestLintURLsWithoutCertificates(t *testing.T) {
	fs := lintString(t, "backend.yml", "state-dir: /x\napi-url: https://x:8080\netcd-listen-client-urls: [https://127.0.0.1:2379]\netcd-listen-peer-urls: https://127.0.0.1:2380\n", Backend)
	expectFinding(t, fs, 2, Error, "api-url", "no cert-file is set", "set cert-file and key-file")
	expectFinding(t, fs, 3, Error, "etcd-listen-client-urls", "etcd-cert-file is not set", "set etcd-cert-file")
	expectFinding(t, fs, 4, Error, "etcd-listen-peer-urls", "etcd-peer-cert-file is not set", "set etcd-peer-cert-file")

	dir := t.TempDir()
	cert := writeCert(t, dir, "b", []string{"localhost"}, x509.ExtKeyUsageServerAuth)
	fs = lintString(t, "backend.yml", "state-dir: /x\ncert-file: "+cert+"\nkey-file: "+cert+"\n", Backend)
	expectFinding(t, fs, 2, Error, "api-url", "api-url is still http", "make api-url https://")
}

func TestLintCAFileMissingOrUnreadable(t *testing.T) {
	fs := lintString(t, "agent.yml", "backend-url:\n  - wss://x:8081\ntrusted-ca-file: /nonexistent/ca.pem\n", Agent)
	expectFinding(t, fs, 3, Error, "trusted-ca-file", "does not exist", "create the file")

	if os.Geteuid() != 0 || !AccountExists("nobody") {
		t.Skip("SKIPPED (peer missing): the readability check needs root and the nobody account")
	}
	dir := t.TempDir()
	for _, d := range []string{dir, filepath.Dir(dir)} { // testing's parent dir is 0700
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	d, _ := Parse("agent.yml", []byte("backend-url: [wss://x:8081]\ntrusted-ca-file: "+ca+"\n"))
	fs = Lint(d, Agent, LintOptions{User: "nobody"})
	expectFinding(t, fs, 2, Error, "trusted-ca-file", "not readable by the nobody user", "chmod g+r")
	if err := os.Chmod(ca, 0o644); err != nil {
		t.Fatal(err)
	}
	if fs = Lint(d, Agent, LintOptions{User: "nobody"}); len(fs) != 0 {
		t.Errorf("a world-readable CA still reported: %v", fs)
	}
}

func TestLintSANsAndClientAuth(t *testing.T) {
	dir := t.TempDir()
	api := writeCert(t, dir, "api", []string{"backend-1.example.com"}, x509.ExtKeyUsageServerAuth)
	etcd := writeCert(t, dir, "etcd", []string{"10.0.0.1"}, x509.ExtKeyUsageServerAuth)
	src := "api-url: https://backend-2.example.com:8080\n" +
		"cert-file: " + api + "\nkey-file: " + api + "\n" +
		"etcd-listen-client-urls: https://10.0.0.1:2379\netcd-advertise-client-urls: https://10.0.0.1:2379\n" +
		"etcd-cert-file: " + etcd + "\netcd-key-file: " + etcd + "\n"
	fs := lintString(t, "backend.yml", src, Backend)
	expectFinding(t, fs, 2, Error, "cert-file", `does not cover host "backend-2.example.com"`, `reissue the certificate with "backend-2.example.com"`)
	expectFinding(t, fs, 6, Error, "etcd-cert-file", "lacks the clientAuth", "serverAuth and clientAuth")
	for _, f := range fs {
		if f.Key == "etcd-cert-file" && strings.Contains(f.What, "does not cover") {
			t.Errorf("etcd cert covers 10.0.0.1 but was reported: %v", f)
		}
	}
}

func TestLintAgentURLs(t *testing.T) {
	fs := lintString(t, "agent.yml", "name: a\nbackend-url:\n  - wss://a:8081\n  - ws://b:8081\ntrusted-ca-file: /dev/null\n", Agent)
	expectFinding(t, fs, 2, Error, "backend-url", "mixed ws:// and wss://", "every backend-url entry wss://")
	fs = lintString(t, "agent.yml", "backend-url: [wss://a:8081]\n", Agent)
	expectFinding(t, fs, 1, Warning, "backend-url", "without trusted-ca-file", "set trusted-ca-file")
	fs = lintString(t, "agent.yml", "backend-url: [ws://a:8081]\ntrusted-ca-file: /dev/null\n", Agent)
	expectFinding(t, fs, 1, Error, "backend-url", "every backend-url is ws://", "wss://")
}

func TestLintInsecureSkipVerify(t *testing.T) {
	fs := lintString(t, "agent.yml", "backend-url: [ws://a:8081]\ninsecure-skip-tls-verify: true\n", Agent)
	expectFinding(t, fs, 2, Error, "insecure-skip-tls-verify", "verification is off", "insecure-skip-tls-verify: false")
}

func TestLintCleanSamplesHaveNoErrors(t *testing.T) {
	for _, f := range samples(t, "*.yml") {
		fs, _, err := LintFile(f, LintOptions{User: "root"})
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range fs {
			if x.Severity == Error {
				t.Errorf("%s: unexpected error finding %v", f, x)
			}
		}
	}
}

func TestLintBrokenYAML(t *testing.T) {
	path := filepath.Join(t.TempDir(), "backend.yml")
	if err := os.WriteFile(path, []byte("a: 1\nb: [\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fs, _, err := LintFile(path, LintOptions{Role: Backend})
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) != 1 || fs[0].Severity != Error || !strings.Contains(fs[0].What, "not valid YAML") {
		t.Errorf("got %v", fs)
	}
}

func TestLintPairAgentReachesLocalBackendByUncoveredHost(t *testing.T) {
	dir := t.TempDir()
	cert := writeCert(t, dir, "api", []string{"backend-1.example.com"}, x509.ExtKeyUsageServerAuth)
	backend := filepath.Join(dir, "backend.yml")
	agent := filepath.Join(dir, "agent.yml")
	if err := os.WriteFile(backend, []byte("api-url: https://backend-1.example.com:8080\ncert-file: "+cert+"\nkey-file: "+cert+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(agent, []byte("name: a\ntrusted-ca-file: "+cert+"\nbackend-url:\n  - wss://127.0.0.1:8081\n  - wss://backend-2.example.com:8081\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fs, err := LintFiles([]string{backend, agent}, LintOptions{User: "root"})
	if err != nil {
		t.Fatal(err)
	}
	expectFinding(t, fs, 3, Error, "backend-url", `does not cover "127.0.0.1"`, `reissue the backend certificate with "127.0.0.1"`)
	for _, f := range fs {
		if strings.Contains(f.What, "backend-2.example.com") {
			t.Errorf("a remote member was checked against this backend's certificate: %v", f)
		}
	}
}
