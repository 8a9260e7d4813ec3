package sensu

import (
	"crypto/x509"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sensu-tlsd/sensu-tlsd/internal/testca"
	"github.com/sensu-tlsd/sensu-tlsd/internal/testpeer"
)

// writeCert writes a self-signed certificate for hosts with the given
// extended key usages (none when usages is empty) and returns its path.
func writeCert(t *testing.T, dir, name string, hosts []string, usages ...x509.ExtKeyUsage) string {
	t.Helper()
	c := testca.SelfSigned(t, testca.Leaf{CN: name, Hosts: hosts, ExtKeyUsage: usages, NoExtKeyUsage: len(usages) == 0})
	path := filepath.Join(dir, name+".pem")
	testca.WriteFile(t, path, c.CertPEM, 0o644)
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

	testpeer.NeedRoot(t, "the readability check reads as the nobody account, which needs root")
	testpeer.NeedPeer(t, AccountExists("nobody"), "the readability check needs the nobody account")
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Fatal(err)
	}
	group, err := user.LookupGroupId(nobody.Gid) // nogroup on Debian: not the user's name
	if err != nil {
		t.Fatal(err)
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
	expectFinding(t, fs, 2, Error, "trusted-ca-file", "not readable by the nobody user", "chgrp "+group.Name+" "+ca+" && chmod g+r")
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

// A peer certificate for the advertised name alone is refused by the other
// members, which check the address it connects from: the linter asks for
// the hosts the issuer gives it (Node.PeerHosts), not fewer.
func TestLintPeerCertificateNeedsTheSourceAddress(t *testing.T) {
	dir := t.TempDir()
	peer := writeCert(t, dir, "peer", []string{"localhost"}, x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth)
	src := "etcd-initial-advertise-peer-urls: https://localhost:2380\netcd-listen-peer-urls: https://localhost:2380\n" +
		"etcd-peer-cert-file: " + peer + "\netcd-peer-key-file: " + peer + "\n"
	fs := lintString(t, "backend.yml", src, Backend)
	expectFinding(t, fs, 3, Error, "etcd-peer-cert-file", `does not cover host "127.0.0.1" that peers dial or that this member connects from`, `reissue the certificate with "127.0.0.1"`)
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
		fs, _, _, err := lintFile(f, LintOptions{User: "root"})
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
	fs, _, _, err := lintFile(path, LintOptions{Role: Backend})
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

func TestLintHalfPairsDashboardCertWithoutKey(t *testing.T) {
	fs := lintString(t, "backend.yml", "state-dir: /x\ndashboard-cert-file: /c.pem\n", Backend)
	expectFinding(t, fs, 2, Error, "dashboard-cert-file", "dashboard-key-file is not", "set dashboard-key-file")
}

func TestLintPeerCertificateWithoutClientAuth(t *testing.T) {
	dir := t.TempDir()
	peer := writeCert(t, dir, "peer", []string{"10.0.0.1"}, x509.ExtKeyUsageServerAuth)
	src := "state-dir: /x\netcd-listen-peer-urls: https://10.0.0.1:2380\netcd-initial-advertise-peer-urls: https://10.0.0.1:2380\n" +
		"etcd-peer-cert-file: " + peer + "\netcd-peer-key-file: " + peer + "\n"
	fs := lintString(t, "backend.yml", src, Backend)
	expectFinding(t, fs, 4, Error, "etcd-peer-cert-file", "lacks the clientAuth", "serverAuth and clientAuth")

	both := writeCert(t, dir, "peer-ok", []string{"10.0.0.1"}, x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth)
	for _, f := range lintString(t, "backend.yml", strings.ReplaceAll(src, peer, both), Backend) {
		if strings.Contains(f.What, "clientAuth") {
			t.Errorf("a peer certificate with clientAuth reported: %v", f)
		}
	}
}

// Sensu reads YAML with yaml.v2 (YAML 1.1): a plain yes, on or y is true.
func TestLintInsecureSkipVerifyYAML11Booleans(t *testing.T) {
	for _, v := range []string{"true", "True", "yes", "Yes", "YES", "on", "ON", "y", "Y", "1", `"true"`, `"1"`, "'t'"} {
		fs := lintString(t, "agent.yml", "backend-url: [ws://a:8081]\ninsecure-skip-tls-verify: "+v+"\n", Agent)
		expectFinding(t, fs, 2, Error, "insecure-skip-tls-verify", "verification is off", "insecure-skip-tls-verify: false")
	}
	for _, v := range []string{"false", "no", "off", "n", "0", `"false"`, `"no"`, `"yes"`, `"on"`} {
		for _, f := range lintString(t, "agent.yml", "backend-url: [ws://a:8081]\ninsecure-skip-tls-verify: "+v+"\n", Agent) {
			if strings.Contains(f.What, "verification is off") {
				t.Errorf("insecure-skip-tls-verify: %s, which Sensu reads as false, reported as on: %v", v, f)
			}
		}
	}
}

func TestLintBooleansSensuReadsAsFalse(t *testing.T) {
	fs := lintString(t, "backend.yml", "state-dir: /x\netcd-client-cert-auth: \"yes\"\netcd-peer-client-cert-auth: enabled\ndebug: 'on'\nno-embed-etcd: yes\n", Backend)
	expectFinding(t, fs, 2, Error, "etcd-client-cert-auth", `"yes" is a string here`, "write true or false")
	expectFinding(t, fs, 3, Error, "etcd-peer-client-cert-auth", `"enabled" is not a boolean`, "write true or false")
	expectFinding(t, fs, 4, Warning, "debug", `"on" is a string here`, "write true or false")
	for _, f := range fs {
		if f.Key == "no-embed-etcd" {
			t.Errorf("a plain yes is a boolean to yaml.v2: %v", f)
		}
	}
}

func TestLintDuplicateKeys(t *testing.T) {
	src := "state-dir: /x\ncert-file: /a.pem\nlog-level: info\ncert-file: /b.pem\nlabels:\n  region: eu\n  region: us\n"
	fs := lintString(t, "backend.yml", src, Backend)
	expectFinding(t, fs, 2, Error, "cert-file", "duplicate key: cert-file is set again on line 4, and Sensu uses line 4", "delete this line or line 4")
	expectFinding(t, fs, 6, Error, "labels.region", "Sensu uses line 7", "delete this line or line 7")
	// The rest of the linter sees what Sensu sees: the last value.
	expectFinding(t, fs, 4, Error, "cert-file", "key-file is not", "set key-file")
}

// An empty key set twice is named as the file spells it.
func TestLintDuplicateEmptyKey(t *testing.T) {
	fs := lintString(t, "backend.yml", "\"\": a\n\"\": b\n", Backend)
	expectFinding(t, fs, 1, Error, `""`, `duplicate key: "" is set again on line 2`, "delete this line or line 2")
}

func TestLintReadabilityNotCheckedWithoutTheAccount(t *testing.T) {
	dir := t.TempDir()
	ca := writeCert(t, dir, "ca", []string{"ca"})
	d, err := Parse("agent.yml", []byte("backend-url: [wss://x:8081]\ntrusted-ca-file: "+ca+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	fs := Lint(d, Agent, LintOptions{User: "no-such-user-xyz"})
	expectFinding(t, fs, 2, Warning, "(readability)", `not checked whether sensu-agent can read trusted-ca-file: there is no account "no-such-user-xyz"`, "pass --user")
	// No file to read, nothing to warn about.
	d, _ = Parse("agent.yml", []byte("backend-url: [ws://x:8081]\n"))
	if fs := Lint(d, Agent, LintOptions{User: "no-such-user-xyz"}); len(fs) != 0 {
		t.Errorf("a file naming no file got %v", fs)
	}
}

func TestLintCommaSeparatedURLLists(t *testing.T) {
	fs := lintString(t, "agent.yml", "name: a\nbackend-url: \"ws://a:8081,ws://b:8081\"\n", Agent)
	expectFinding(t, fs, 2, Error, "backend-url", "joins URLs with commas; Sensu reads it as a single URL", "write one URL per list entry: backend-url: [ws://a:8081, ws://b:8081]")
	fs = lintString(t, "agent.yml", "name: a\nbackend-url:\n  - ws://a:8081, ws://b:8081\n", Agent)
	expectFinding(t, fs, 2, Error, "backend-url", "joins URLs with commas", "backend-url: [ws://a:8081, ws://b:8081]")
	fs = lintString(t, "backend.yml", "state-dir: /x\netcd-listen-client-urls: \"http://10.0.0.1:2379,http://127.0.0.1:2379\"\n", Backend)
	expectFinding(t, fs, 2, Error, "etcd-listen-client-urls", "joins URLs with commas", "etcd-listen-client-urls: [http://10.0.0.1:2379, http://127.0.0.1:2379]")
	// Whitespace separates a string list the way Sensu splits it, and the
	// comma-separated etcd-initial-cluster is no list.
	for _, f := range lintString(t, "backend.yml", "state-dir: /x\netcd-listen-client-urls: \"http://10.0.0.1:2379 http://127.0.0.1:2379\"\netcd-initial-cluster: a=http://x:2380,b=http://y:2380\n", Backend) {
		t.Errorf("unexpected finding %v", f)
	}
}

func lintEnvString(t *testing.T, name, src string) []Finding {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	fs, _, _, err := lintFile(path, LintOptions{User: "root"})
	if err != nil {
		t.Fatal(err)
	}
	for i := range fs {
		fs[i].File = name
	}
	return fs
}

func TestLintEnvFiles(t *testing.T) {
	fs := lintEnvString(t, "sensu-agent", "# /etc/default/sensu-agent\nSENSU_BACKEND_URL=\"ws://a:8081,ws://b:8081\"\nSENSU_INSECURE_SKIP_TLS_VERIFY=true\nSENSU_TRUSTED_CA_FLE=/ca.pem\nSENSU_TRUSTED_CA_FILE=/nonexistent/ca.pem\nOTHER=1\n")
	expectFinding(t, fs, 2, Error, "SENSU_BACKEND_URL", `"ws://a:8081,ws://b:8081" joins URLs with commas`, `separate the URLs with spaces: SENSU_BACKEND_URL="ws://a:8081 ws://b:8081"`)
	expectFinding(t, fs, 3, Error, "SENSU_INSECURE_SKIP_TLS_VERIFY", "verification is off", "insecure-skip-tls-verify: false")
	expectFinding(t, fs, 4, Error, "SENSU_TRUSTED_CA_FLE", "sensu-agent reads no setting from SENSU_TRUSTED_CA_FLE", "rename it to SENSU_TRUSTED_CA_FILE")
	expectFinding(t, fs, 5, Error, "SENSU_TRUSTED_CA_FILE", "/nonexistent/ca.pem does not exist", "point SENSU_TRUSTED_CA_FILE at the right path")
	if len(fs) != 4 {
		t.Errorf("want 4 findings, got %v", fs)
	}

	// Space-separated lists are right; a YAML 1.1 word is only a string in
	// the environment (Sensu reads "yes" as false there).
	fs = lintEnvString(t, "sensu-agent", "SENSU_BACKEND_URL=\"wss://a:8081 ws://b:8081\"\nSENSU_INSECURE_SKIP_TLS_VERIFY=yes\n")
	expectFinding(t, fs, 1, Error, "SENSU_BACKEND_URL", "mixed ws:// and wss://", "wss://")
	expectFinding(t, fs, 2, Warning, "SENSU_INSECURE_SKIP_TLS_VERIFY", `"yes" is a string here`, "write true or false")

	fs = lintEnvString(t, "sensu-backend", "SENSU_BACKEND_ETCD_LISTEN_CLIENT_URLS=http://10.0.0.1:2379,http://127.0.0.1:2379\nSENSU_BACKEND_CERTFILE=/x.pem\n")
	expectFinding(t, fs, 1, Error, "SENSU_BACKEND_ETCD_LISTEN_CLIENT_URLS", "joins URLs with commas", `SENSU_BACKEND_ETCD_LISTEN_CLIENT_URLS="http://10.0.0.1:2379 http://127.0.0.1:2379"`)
	expectFinding(t, fs, 2, Error, "SENSU_BACKEND_CERTFILE", "reads no setting", "rename it to SENSU_BACKEND_CERT_FILE")

	for _, f := range []string{"sensu-agent.env", "sensu-backend.env"} {
		fs, _, _, err := lintFile(filepath.Join("testdata", f), LintOptions{User: "root"})
		if err != nil || len(fs) != 0 {
			t.Errorf("%s: %v %v", f, fs, err)
		}
	}
}

func TestDetectEnvRole(t *testing.T) {
	for _, c := range []struct {
		name, src string
		want      Role
	}{
		{"sensu-backend", "A=1\n", Backend},
		{"sensu-agent", "A=1\n", Agent},
		{"env", "SENSU_BACKEND_URL=ws://a:8081\n", Agent},
		{"env", "SENSU_BACKEND_API_URL=http://a:8080\n", Backend},
	} {
		lines, ok, _ := envFileOf(c.name, []byte(c.src))
		if got, err := envRole(c.name, lines); !ok || got != c.want || err != nil {
			t.Errorf("envRole(%s, %q) = %v, %v (an env file: %v); want %v", c.name, c.src, got, err, ok, c.want)
		}
	}
	lines, _, _ := envFileOf("env", []byte("A=1\n"))
	if _, err := envRole("env", lines); err == nil || !strings.Contains(err.Error(), "--role") {
		t.Errorf("ambiguous env file: %v", err)
	}
	for path, want := range map[string]bool{"/etc/default/sensu-agent": true, "agent.yml": false} {
		if _, got, _ := envFileOf(path, []byte("SENSU_NAME=a\n")); got != want {
			t.Errorf("envFileOf(%s): an env file = %v", path, got)
		}
	}
	if _, ok, _ := envFileOf("/etc/default/sensu-agent", []byte("name: a\n")); ok {
		t.Error("YAML content taken for an env file")
	}
}

// TestLintSyntaxErrorsCarryTheirLine: a file that does not parse is one
// finding at the line that broke, found from the error's field (a path
// holding "line " does not confuse it), saying the file and line once.
func TestLintSyntaxErrorsCarryTheirLine(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pipeline 7")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	env, yml := filepath.Join(dir, "sensu-agent"), filepath.Join(dir, "backend.yml")
	if err := os.WriteFile(env, []byte("SENSU_NAME=a\nSENSU_BACKEND_URL=\"ws://b:8081\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(yml, []byte("a: 1\nb: [\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path string
		line int
		what string
	}{
		{env, 2, "SENSU_BACKEND_URL has an unterminated quote"},
		{yml, 2, "not valid YAML: did not find expected node content"},
	} {
		fs, _, _, err := lintFile(c.path, LintOptions{User: "root"})
		if err != nil {
			t.Fatal(err)
		}
		if len(fs) != 1 || fs[0].Line != c.line || fs[0].What != c.what || strings.Count(fs[0].String(), c.path) != 1 {
			t.Errorf("%s: %v; want one finding at line %d: %s", c.path, fs, c.line, c.what)
		}
	}
}

// Phase 4 on the open-source build points the agent at its node's
// sensu-tlsd on ws://: with the uplink known, that entry is info, not
// plaintext, and entries leaving the node are still checked.
func TestLintAgentURLsAtTheSensuTLSDUplink(t *testing.T) {
	lint := func(src string, uplink string) []Finding {
		d, err := Parse("agent.yml", []byte(src))
		if err != nil {
			t.Fatal(err)
		}
		return Lint(d, Agent, LintOptions{User: "root", Uplink: uplink})
	}
	src := "name: a\nbackend-url: [ws://127.0.0.1:8091]\ntrusted-ca-file: /dev/null\n"
	expectFinding(t, lint(src, ""), 2, Error, "backend-url", "every backend-url is ws://", "wss://")
	fs := lint(src, "127.0.0.1:8091")
	expectFinding(t, fs, 2, Info, "backend-url", "ws://127.0.0.1:8091 is this node's sensu-tlsd agent uplink", "")
	expectFinding(t, fs, 2, Info, "backend-url", "trusted-ca-file are not used on this hop", "")
	if len(fs) != 1 || Worst(fs) != Info || strings.Contains(fs[0].String(), "fix:") {
		t.Errorf("want the one info, without a fix, got %v", fs)
	}
	fs = lint("backend-url: [ws://127.0.0.1:8091, wss://b:8081, ws://c:8081]\n", "127.0.0.1:8091")
	expectFinding(t, fs, 1, Error, "backend-url", "mixed ws:// and wss://", "every backend-url entry wss://")
	if fs := lint("backend-url: [ws://127.0.0.1:8091, wss://b:8081]\ntrusted-ca-file: /dev/null\n", "127.0.0.1:8091"); Worst(fs) != Info {
		t.Errorf("the uplink beside wss:// members: %v, want info only", fs)
	}

	path := filepath.Join(t.TempDir(), "sensu-agent")
	os.WriteFile(path, []byte("SENSU_BACKEND_URL=\"ws://127.0.0.1:8091 wss://b:8081\"\n"), 0o644)
	fs, _, _, err := lintFile(path, LintOptions{User: "root", Uplink: "127.0.0.1:8091"})
	if err != nil || len(fs) != 1 || fs[0].Severity != Info || fs[0].Key != "SENSU_BACKEND_URL" {
		t.Errorf("an environment file pointing at the uplink beside a wss:// member: %v %v, want one info", fs, err)
	}
}
