package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/internal/testca"
	"github.com/sensu-tlsd/sensu-tlsd/internal/testpeer"
)

// guideConfig declares the certificate set the Sensu security guide builds
// with cfssl: a CA, three backends, an etcd client and an agent.
const guideConfig = `state-dir: %s
certificates:
  - {name: backend-1, profile: backend, hosts: [backend-1, 127.0.0.1]}
  - {name: backend-2, profile: backend, hosts: [backend-2, 127.0.0.1]}
  - {name: backend-3, profile: backend, hosts: [backend-3, 127.0.0.1]}
  - {name: client, profile: etcd-client}
  - {name: agent-1, profile: agent}
`

func writeGuideConfig(t *testing.T) (dir, cfg string) {
	t.Helper()
	dir = t.TempDir()
	cfg = filepath.Join(dir, "tlsd.yml")
	if err := os.WriteFile(cfg, []byte(strings.Replace(guideConfig, "%s", dir, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, cfg
}

func opensslOut(t *testing.T, args ...string) string {
	t.Helper()
	testpeer.NeedPeer(t, testpeer.HasProgram("openssl"), "openssl is not installed")
	out, err := exec.Command("openssl", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("openssl %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func TestGuideSetIssuedVerifiedByOpenSSL(t *testing.T) {
	dir, cfg := writeGuideConfig(t)
	mustRun(t, "", nil, "--config", cfg, "ca", "init")
	r := mustRun(t, "", nil, "--config", cfg, "issue", "--all")
	for _, name := range []string{"backend-1", "backend-2", "backend-3", "client", "agent-1"} {
		if !strings.Contains(r.stdout, "issued "+name) {
			t.Errorf("issue --all did not report %s:\n%s", name, r.stdout)
		}
	}
	ca := filepath.Join(dir, "ca.pem")
	wantUsages := map[string][]string{
		"backend-1": {"TLS Web Server Authentication", "TLS Web Client Authentication", "DNS:backend-1", "IP Address:127.0.0.1"},
		"client":    {"TLS Web Client Authentication"},
		"agent-1":   {"TLS Web Client Authentication", "Subject: CN = agent-1"},
	}
	for _, name := range []string{"backend-1", "backend-2", "backend-3", "client", "agent-1"} {
		cert := filepath.Join(dir, name+".pem")
		if out := opensslOut(t, "verify", "-CAfile", ca, cert); !strings.Contains(out, ": OK") {
			t.Errorf("openssl verify %s: %s", name, out)
		}
		text := opensslOut(t, "x509", "-in", cert, "-noout", "-text")
		for _, want := range wantUsages[name] {
			if !strings.Contains(text, want) {
				t.Errorf("%s: openssl x509 -text lacks %q", name, want)
			}
		}
		if name == "client" || name == "agent-1" {
			if strings.Contains(text, "TLS Web Server Authentication") {
				t.Errorf("%s must be clientAuth only", name)
			}
		}
		if fi, err := os.Stat(filepath.Join(dir, name+"-key.pem")); err != nil {
			t.Errorf("%s-key.pem: %v", name, err)
		} else if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s-key.pem: mode %04o, want 0600", name, fi.Mode().Perm())
		}
	}
	// etcd-peer is not in the guide's set: issue one and let openssl
	// read both usages, since the embedded etcd serves and dials with it.
	mustRun(t, "", nil, "--config", cfg, "issue", "etcd-1", "--profile", "etcd-peer", "--hosts", "backend-1,127.0.0.1")
	peer := filepath.Join(dir, "etcd-1.pem")
	if out := opensslOut(t, "verify", "-CAfile", ca, peer); !strings.Contains(out, ": OK") {
		t.Errorf("openssl verify etcd-1: %s", out)
	}
	text := opensslOut(t, "x509", "-in", peer, "-noout", "-ext", "extendedKeyUsage,subjectAltName")
	for _, want := range []string{"TLS Web Server Authentication, TLS Web Client Authentication", "DNS:backend-1, IP Address:127.0.0.1"} {
		if !strings.Contains(text, want) {
			t.Errorf("etcd-1: openssl x509 -ext lacks %q:\n%s", want, text)
		}
	}
	st := mustRun(t, "", nil, "--config", cfg, "status")
	if strings.Contains(st.stdout, "✗") || !strings.Contains(st.stdout, "local CA") {
		t.Errorf("status shows a failure for a fresh guide set, or no row for its CA:\n%s", st.stdout)
	}
	chk := mustRun(t, "", nil, "--config", cfg, "check")
	if !strings.HasPrefix(chk.stdout, "# OK: 6 of 6 certificates OK") || !strings.Contains(chk.stdout, `sensu_tlsd_certificate_expiry_seconds{name="agent-1"`) {
		t.Errorf("check output:\n%s", chk.stdout)
	}
}

// TestTourWithoutConfig is the README's tour: no config file at all.
func TestTourWithoutConfig(t *testing.T) {
	dir := t.TempDir()
	mustRun(t, dir, nil, "--state-dir", dir, "ca", "init")
	mustRun(t, dir, nil, "--state-dir", dir, "issue", "backend-1", "--profile", "backend", "--hosts", "backend-1,127.0.0.1")
	out := filepath.Join(dir, "out")
	mustRun(t, dir, []string{"SENSU_TLSD_CA_DIR=" + dir}, "issue", "agent-1", "--profile", "agent", "--out", out)
	r := mustRun(t, dir, nil, "status", "--json", "backend-1.pem", filepath.Join(out, "agent-1.pem"), "--ca", "ca.pem")
	var report struct {
		Certificates []struct {
			Name    string `json:"name"`
			Subject string `json:"subject"`
			KeyFile string `json:"key_file"`
			Checks  []struct {
				Name string `json:"name"`
				OK   bool   `json:"ok"`
			} `json:"checks"`
		} `json:"certificates"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &report); err != nil {
		t.Fatalf("status --json: %v\n%s", err, r.stdout)
	}
	entries := report.Certificates
	if len(entries) != 2 || entries[0].Subject != "backend-1" || entries[1].Subject != "agent-1" {
		t.Fatalf("entries: %+v", entries)
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.KeyFile, e.Subject+"-key.pem") {
			t.Errorf("%s: key not found beside the cert by cfssljson naming: %q", e.Name, e.KeyFile)
		}
		names := map[string]bool{}
		for _, c := range e.Checks {
			names[c.Name] = true
			if !c.OK {
				t.Errorf("%s: check %s failed", e.Name, c.Name)
			}
		}
		for _, want := range []string{"key matches", "chain", "validity", "file modes"} {
			if !names[want] {
				t.Errorf("%s: check %q did not run", e.Name, want)
			}
		}
	}
}

func TestStatusAndCheckNameEachBrokenInput(t *testing.T) {
	dir := t.TempDir()
	other := t.TempDir()
	mustRun(t, dir, nil, "--state-dir", dir, "ca", "init")
	mustRun(t, other, nil, "--state-dir", other, "ca", "init")
	issue := func(stateDir, name string, extra ...string) string {
		mustRun(t, dir, nil, append([]string{"--state-dir", stateDir, "issue", name, "--profile", "backend", "--out", stateDir}, extra...)...)
		return filepath.Join(stateDir, name+".pem")
	}
	good := issue(dir, "good")
	wrongCA := issue(other, "wrongca")
	mismatch := issue(dir, "mismatch")
	issue(dir, "spare")
	copyFile(t, filepath.Join(dir, "spare-key.pem"), filepath.Join(dir, "mismatch-key.pem"))
	readable := issue(dir, "readable")
	if err := os.Chmod(filepath.Join(dir, "readable-key.pem"), 0o644); err != nil {
		t.Fatal(err)
	}
	expired := issue(dir, "expired", "--lifetime", "1s")
	encrypted := issue(dir, "encrypted")
	opensslOut(t, "pkey", "-in", filepath.Join(dir, "encrypted-key.pem"), "-aes256", "-passout", "pass:x", "-out", filepath.Join(dir, "enc.tmp"))
	if err := os.Rename(filepath.Join(dir, "enc.tmp"), filepath.Join(dir, "encrypted-key.pem")); err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(dir, "garbage.pem")
	empty := filepath.Join(dir, "empty.pem")
	writeTestFile(t, garbage, "not a cert")
	writeTestFile(t, empty, "")
	time.Sleep(1500 * time.Millisecond) // let the 1s certificate expire

	ca := filepath.Join(dir, "ca.pem")
	cases := []struct {
		file, want string
	}{
		{wrongCA, `which is not in the CA bundle ` + ca},
		{mismatch, "mismatch-key.pem does not belong to the certificate in " + mismatch},
		{readable, "readable-key.pem: mode 0644 gives every user on the machine access to the private key: use 0600"},
		{expired, "validity: expired on"},
		{encrypted, "encrypted-key.pem: the private key is encrypted"},
		{garbage, garbage + ": no PEM certificate found"},
		{empty, empty + ": file is empty"},
	}
	for _, c := range cases {
		r := run(t, dir, nil, "status", c.file, "--ca", ca)
		if r.code != 1 || !strings.Contains(r.stdout, c.want) {
			t.Errorf("status %s: exit %d, want 1 and %q in:\n%s%s", filepath.Base(c.file), r.code, c.want, r.stdout, r.stderr)
		}
	}
	notYet := filepath.Join(dir, "notyet.pem")
	writeNotYetValid(t, notYet, filepath.Join(dir, "notyet-key.pem"))
	if r := run(t, dir, nil, "status", notYet); r.code != 1 || !strings.Contains(r.stdout, "not valid yet") {
		t.Errorf("status of a not-yet-valid cert: exit %d\n%s", r.code, r.stdout)
	}

	for _, c := range []struct {
		args []string
		code int
		line string
	}{
		{[]string{good, "--ca", ca}, 0, "OK: 1 of 1 certificates OK"},
		{[]string{good, "--ca", ca, "--warn", "100d"}, 1, "WARNING: good.pem expires in 89d"},
		{[]string{good, "--ca", ca, "--warn", "100d", "--crit", "95d"}, 2, "CRITICAL: good.pem expires in 89d"},
		{[]string{expired, "--ca", ca}, 2, "CRITICAL: expired.pem expired"},
		{[]string{garbage}, 3, "# UNKNOWN: garbage.pem unreadable: " + garbage + ": no PEM certificate found"},
		// The certificate reads, its key does not: that is unknown too,
		// with the file and the fix in the status line.
		{[]string{encrypted, "--ca", ca}, 3, "# UNKNOWN: encrypted.pem unreadable: " + filepath.Join(dir, "encrypted-key.pem") + ": the private key is encrypted; Sensu cannot use a passphrase-protected key: decrypt it"},
		{[]string{mismatch, "--ca", ca}, 2, "# CRITICAL: mismatch.pem fails key matches: the private key in " + filepath.Join(dir, "mismatch-key.pem") + " does not belong to the certificate"},
		{[]string{"--warn", "soon"}, 3, `UNKNOWN: --warn: "soon" is not a duration`},
		{[]string{good, "--warn", "7d", "--crit", "30d"}, 3, "UNKNOWN: --warn 7d is shorter than --crit 30d"},
	} {
		r := run(t, dir, nil, append([]string{"check"}, c.args...)...)
		if r.code != c.code || !strings.Contains(r.stdout+r.stderr, c.line) {
			t.Errorf("check %v: exit %d, want %d with %q:\n%s%s", c.args, r.code, c.code, c.line, r.stdout, r.stderr)
		}
	}
}

func TestStatusReadsSensuConfigs(t *testing.T) {
	dir, cfg := writeGuideConfig(t)
	mustRun(t, "", nil, "--config", cfg, "ca", "init")
	mustRun(t, "", nil, "--config", cfg, "issue", "--all")
	backend := filepath.Join(dir, "backend.yml")
	writeTestFile(t, backend, `api-url: "https://backend-1:8080"
cert-file: "`+dir+`/backend-1.pem"
key-file: "`+dir+`/backend-1-key.pem"
trusted-ca-file: "`+dir+`/ca.pem"
etcd-advertise-client-urls: ["https://backend-2:2379"]
etcd-cert-file: "`+dir+`/backend-1.pem"
etcd-key-file: "`+dir+`/backend-1-key.pem"
etcd-trusted-ca-file: "`+dir+`/ca.pem"
`)
	agent := filepath.Join(dir, "agent.yml")
	writeTestFile(t, agent, "backend-url: [\"wss://backend-1:8081\"]\ntrusted-ca-file: "+dir+"/ca.pem\n")
	r := run(t, "", nil, "status", "--backend-config", backend, "--agent-config", agent)
	if r.code != 1 {
		t.Fatalf("status: exit %d, want 1 (etcd cert does not cover backend-2)\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"backend.yml cert-file", "backend.yml etcd-cert-file", "agent.yml trusted-ca-file",
		"✗ backend.yml etcd-cert-file: SANs: does not cover backend-2"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("status lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "✗ backend.yml cert-file") {
		t.Errorf("the API cert covers backend-1 and must pass:\n%s", r.stdout)
	}
}

// TestCfsslGuideRecipe makes certificates with the real cfssl following the
// guide's commands verbatim (only the binaries' paths differ) and checks
// sensu-tlsd reads and validates them, and flags the empty DNS SAN the
// guide's ADDRESS=,backend-N and "hosts":[""] leave in every one.
func TestCfsslGuideRecipe(t *testing.T) {
	dir := t.TempDir()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	_, statErr := os.Stat(filepath.Join(root, "tools", "go.mod"))
	testpeer.NeedPeer(t, statErr == nil, "tools/go.mod (cfssl) not found")
	tool := func(name string) string {
		bin := filepath.Join(dir, name)
		cmd := exec.Command("go", "build", "-modfile=tools/go.mod", "-o", bin, "github.com/cloudflare/cfssl/cmd/"+name)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			testpeer.NeedPeer(t, false, "cannot build "+name+" from tools/go.mod: "+err.Error()+"\n"+string(out))
		}
		return bin
	}
	cfssl, cfssljson := tool("cfssl"), tool("cfssljson")
	// The guide's commands, as the guide prints them, with cfssl and
	// cfssljson found on PATH.
	script := `
echo '{"CN":"CA","key":{"algo":"rsa","size":2048}}' | cfssl gencert -initca - | cfssljson -bare ca -
echo '{"signing":{"default":{"expiry":"43800h","usages":["signing","key encipherment","server auth","client auth"]}}}' > ca-config.json

export ADDRESS=,backend-1
export NAME=backend-1
echo '{"CN":"'$NAME'","hosts":[""],"key":{"algo":"rsa","size":2048}}' | cfssl gencert -config=ca-config.json -ca=ca.pem -ca-key=ca-key.pem -hostname="$ADDRESS" -profile=peer - | cfssljson -bare $NAME

export ADDRESS=,backend-2
export NAME=backend-2
echo '{"CN":"'$NAME'","hosts":[""],"key":{"algo":"rsa","size":2048}}' | cfssl gencert -config=ca-config.json -ca=ca.pem -ca-key=ca-key.pem -hostname="$ADDRESS" -profile=peer - | cfssljson -bare $NAME

export ADDRESS=,backend-3
export NAME=backend-3
echo '{"CN":"'$NAME'","hosts":[""],"key":{"algo":"rsa","size":2048}}' | cfssl gencert -config=ca-config.json -ca=ca.pem -ca-key=ca-key.pem -hostname="$ADDRESS" -profile=peer - | cfssljson -bare $NAME

export NAME=client
echo '{"CN":"'$NAME'","hosts":[""],"key":{"algo":"rsa","size":2048}}' | cfssl gencert -config=ca-config.json -ca=ca.pem -ca-key=ca-key.pem -hostname="" -profile=client - | cfssljson -bare $NAME

export NAME=agent-1
echo '{"CN":"'$NAME'","hosts":[""],"key":{"algo":"rsa","size":2048}}' | cfssl gencert -config=ca-config.json -ca=ca.pem -ca-key=ca-key.pem -hostname="" -profile=client - | cfssljson -bare $NAME
`
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{cfssl, cfssljson} {
		if err := os.Rename(f, filepath.Join(bin, filepath.Base(f))); err != nil {
			t.Fatal(err)
		}
	}
	sh := exec.Command("sh", "-ec", script)
	sh.Dir = dir
	sh.Env = append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	if out, err := sh.CombinedOutput(); err != nil {
		t.Fatalf("the guide's cfssl commands: %v\n%s", err, out)
	}

	certs := []string{"backend-1.pem", "backend-2.pem", "backend-3.pem", "client.pem", "agent-1.pem"}
	r := run(t, dir, nil, append([]string{"status", "--ca", "ca.pem"}, certs...)...)
	if r.code != 0 || strings.Contains(r.stdout, "✗") {
		t.Fatalf("status of cfssl-made certs: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, `"",backend-1 `) {
		t.Errorf("the empty SAN is not shown:\n%s", r.stdout)
	}
	for _, c := range certs {
		if !strings.Contains(r.stdout, "! "+c+": SANs: an empty DNS name is among the SANs") {
			t.Errorf("status does not warn about %s's empty SAN:\n%s", c, r.stdout)
		}
	}
	// cfssl writes PKCS#1 ("RSA PRIVATE KEY"): it must be read as such.
	key, err := os.ReadFile(filepath.Join(dir, "backend-1-key.pem"))
	if err != nil || !strings.Contains(string(key), "RSA PRIVATE KEY") {
		t.Errorf("expected cfssl to write a PKCS#1 key (%v), got:\n%.40s", err, key)
	}
	chk := run(t, dir, nil, "check", "backend-1.pem", "--ca", "ca.pem")
	if chk.code != 1 || !strings.HasPrefix(chk.stdout, "# WARNING: backend-1.pem SANs: an empty DNS name is among the SANs") {
		t.Errorf("check of a guide certificate: exit %d, want 1 and the empty SAN warning:\n%s%s", chk.code, chk.stdout, chk.stderr)
	}
}

// TestIssuedCertsDoMutualTLS: a Go TLS server with the backend cert that
// requires client certificates, and a client with the agent cert.
func TestIssuedCertsDoMutualTLS(t *testing.T) {
	dir := t.TempDir()
	mustRun(t, dir, nil, "--state-dir", dir, "ca", "init")
	mustRun(t, dir, nil, "--state-dir", dir, "issue", "backend-1", "--profile", "backend", "--hosts", "backend-1,127.0.0.1")
	mustRun(t, dir, nil, "--state-dir", dir, "issue", "agent-1", "--profile", "agent")
	mustRun(t, dir, nil, "--state-dir", dir, "issue", "etcd-1", "--profile", "etcd-client")
	pool := x509.NewCertPool()
	caPEM, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err != nil || !pool.AppendCertsFromPEM(caPEM) {
		t.Fatalf("reading the CA: %v", err)
	}
	load := func(name string) tls.Certificate {
		c, err := tls.LoadX509KeyPair(filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem"))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{load("backend-1")},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		MinVersion:   tls.VersionTLS12,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if err := c.(*tls.Conn).Handshake(); err == nil {
					c.Write([]byte(c.(*tls.Conn).ConnectionState().PeerCertificates[0].Subject.CommonName))
				}
			}()
		}
	}()
	for _, client := range []string{"agent-1", "etcd-1"} {
		conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{
			RootCAs: pool, ServerName: "backend-1", Certificates: []tls.Certificate{load(client)}, MinVersion: tls.VersionTLS12,
		})
		if err != nil {
			t.Fatalf("%s: mutual TLS handshake: %v", client, err)
		}
		buf := make([]byte, 64)
		n, _ := conn.Read(buf)
		conn.Close()
		if string(buf[:n]) != client {
			t.Errorf("server saw client CN %q, want %q", buf[:n], client)
		}
	}
	// An agent cert must not work as a server certificate, even with a SAN.
	mustRun(t, dir, nil, "--state-dir", dir, "issue", "agent-2", "--profile", "agent", "--hosts", "agent-2")
	agentLn, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{load("agent-2")}})
	if err != nil {
		t.Fatal(err)
	}
	defer agentLn.Close()
	go func() {
		if c, err := agentLn.Accept(); err == nil {
			c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	_, err = tls.Dial("tcp", agentLn.Addr().String(), &tls.Config{RootCAs: pool, ServerName: "agent-2"})
	if err == nil || !strings.Contains(err.Error(), "incompatible key usage") {
		t.Errorf("a client-only cert served TLS: %v", err)
	}
}

func TestConfigValidateNamesFileLineAndSuggestion(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "tlsd.yml")
	writeTestFile(t, bad, "state-dir: /x\ncertificates:\n  - name: a\n    profile: backend\n    cert_file: /a.pem\n")
	r := run(t, "", nil, "config", "validate", bad)
	if r.code == 0 || !strings.Contains(r.stderr, bad+`:5: unknown key "certificates[0].cert_file": did you mean "cert-file"?`) {
		t.Errorf("config validate: exit %d\n%s", r.code, r.stderr)
	}
	_, good := writeGuideConfig(t)
	r = mustRun(t, "", nil, "config", "validate", good)
	if !strings.Contains(r.stdout, "OK (5 certificates") {
		t.Errorf("config validate of a good file: %s", r.stdout)
	}
	r = mustRun(t, "", []string{"SENSU_TLSD_CONFIG=" + good, "SENSU_TLSD_LOG_LEVEL=debug"}, "config", "keys", "--log-format", "json")
	if !strings.Contains(r.stdout, "log-level") || !strings.Contains(r.stdout, "debug") || !regexpLine(r.stdout, "log-format", "json") {
		t.Errorf("config keys does not show env and flag values:\n%s", r.stdout)
	}
}

// regexpLine reports whether some line starts with key and ends with value.
func regexpLine(out, key, value string) bool {
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) > 0 && f[0] == key && f[len(f)-1] == value {
			return true
		}
	}
	return false
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestHelpListsEveryCommandAndCompletionWorks(t *testing.T) {
	r := mustRun(t, "", nil, "--help")
	for _, c := range []string{"ca ", "check ", "completion ", "config ", "issue ", "status ", "version "} {
		if !strings.Contains(r.stdout, "  "+c) {
			t.Errorf("--help lacks command %q", c)
		}
	}
	if r := mustRun(t, "", nil, "completion", "bash"); !strings.Contains(r.stdout, "sensu-tlsd") {
		t.Errorf("completion bash printed no script")
	}
}

// writeNotYetValid writes a self-signed certificate whose validity starts in
// a year (openssl 3.0's req cannot set a start date).
func writeNotYetValid(t *testing.T, certFile, keyFile string) {
	t.Helper()
	c := testca.SelfSigned(t, testca.Leaf{CN: "notyet", NotBefore: time.Now().Add(365 * 24 * time.Hour), NotAfter: time.Now().Add(2 * 365 * 24 * time.Hour)})
	writeTestFile(t, certFile, string(c.CertPEM))
	writeTestFile(t, keyFile, string(c.KeyPEM))
}

// writeTestFile writes content to path (0600: some are keys) or fails the test.
func writeTestFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
