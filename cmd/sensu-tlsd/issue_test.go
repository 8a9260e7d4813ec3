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

// A clustered backend's certificate, tied to Sensu and given no hosts,
// is issued for the hosts its backend.yml and environment file make
// clients and peers use, and the output says where they came from.
func TestIssueAllTakesSensuCertificateHostsFromBackendYML(t *testing.T) {
	dir := t.TempDir()
	yml, env := filepath.Join(dir, "backend.yml"), filepath.Join(dir, "sensu-backend")
	writeTestFile(t, yml, `etcd-name: backend-2
api-url: "https://backend-2.example.net:8080"
etcd-advertise-client-urls: "https://backend-2.example.net:2379"
etcd-listen-client-urls: "https://0.0.0.0:2379"
etcd-initial-advertise-peer-urls: "https://localhost:2380"
etcd-listen-peer-urls: "https://127.0.0.1:2380"
etcd-initial-cluster: "backend-1=https://localhost:2480,backend-2=https://localhost:2380,backend-3=https://localhost:2580"
`)
	writeTestFile(t, env, "SENSU_BACKEND_API_LISTEN_ADDRESS=10.1.2.3:8080\n")
	cfg := filepath.Join(dir, "tlsd.yml")
	writeTestFile(t, cfg, `state-dir: `+dir+`
sensu:
  backend-config: `+yml+`
  backend-env-files: [`+env+`]
  backend-certificate: backend
certificates:
  - {name: backend, profile: backend}
`)
	mustRun(t, "", nil, "--config", cfg, "ca", "init")
	r := mustRun(t, "", nil, "--config", cfg, "issue", "--all")
	if want := "hosts read from " + yml + ", " + env; !strings.Contains(r.stdout, want) {
		t.Errorf("issue --all does not say where the hosts came from (%q):\n%s", want, r.stdout)
	}
	text := opensslOut(t, "x509", "-in", filepath.Join(dir, "backend.pem"), "-noout", "-ext", "subjectAltName")
	for _, want := range []string{"DNS:backend-2.example.net", "IP Address:10.1.2.3", "DNS:localhost", "IP Address:127.0.0.1"} {
		if !strings.Contains(text, want) {
			t.Errorf("the backend certificate lacks %s:\n%s", want, text)
		}
	}
	if st := mustRun(t, "", nil, "--config", cfg, "status"); strings.Contains(st.stdout, "✗") {
		t.Errorf("status shows a failure for the certificate issued for backend.yml's hosts:\n%s", st.stdout)
	}
}
