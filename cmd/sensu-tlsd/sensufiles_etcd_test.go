package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/config/sensu"
	"github.com/sensu-tlsd/sensu-tlsd/internal/testpeer"
)

// sensuconfEtcdFlags turns backend.yml's etcd-* keys into the etcd flags
// the embedded etcd of sensu-backend is configured with.
func sensuconfEtcdFlags(t *testing.T, backendYML string) []string {
	t.Helper()
	src, err := os.ReadFile(backendYML)
	if err != nil {
		t.Fatal(err)
	}
	d, err := sensu.Parse(backendYML, src)
	if err != nil {
		t.Fatal(err)
	}
	var flags []string
	for _, key := range []string{"etcd-name", "etcd-listen-client-urls", "etcd-advertise-client-urls", "etcd-listen-peer-urls",
		"etcd-initial-advertise-peer-urls", "etcd-initial-cluster", "etcd-cert-file", "etcd-key-file", "etcd-trusted-ca-file",
		"etcd-client-cert-auth", "etcd-peer-cert-file", "etcd-peer-key-file", "etcd-peer-trusted-ca-file", "etcd-peer-client-cert-auth"} {
		if v, ok := d.Get(key); ok {
			flags = append(flags, "--"+strings.TrimPrefix(key, "etcd-")+"="+strings.Join(v.Items(), ","))
		}
	}
	return flags
}

func TestSensuconfEnforcedBackendYMLRunsRealEtcdOverMutualTLS(t *testing.T) {
	testpeer.NeedPeer(t, testpeer.HasProgram("etcd"), "etcd not on PATH (apt-get install etcd-server)")
	dir := t.TempDir()
	api, agentPort := testpeer.FreePort(t), testpeer.FreePort(t)
	client, peer := testpeer.FreePort(t), testpeer.FreePort(t)
	backend, agent := filepath.Join(dir, "backend.yml"), filepath.Join(dir, "agent.yml")
	if err := os.WriteFile(backend, []byte(fmt.Sprintf(`# backend with its embedded etcd on loopback
api-listen-address: "127.0.0.1:%d"
agent-host: "127.0.0.1"
agent-port: %d
etcd-name: "default"
etcd-listen-client-urls: "http://127.0.0.1:%[3]d"
etcd-advertise-client-urls: "http://127.0.0.1:%[3]d"
etcd-listen-peer-urls: "http://127.0.0.1:%[4]d"
etcd-initial-advertise-peer-urls: "http://127.0.0.1:%[4]d"
etcd-initial-cluster: "default=http://127.0.0.1:%[4]d"
`, api, agentPort, client, peer)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(agent, []byte("backend-url:\n  - ws://127.0.0.1:"+fmt.Sprint(agentPort)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "tlsd.yml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`state-dir: %[1]s/state
certificates:
  - {name: backend, profile: backend, hosts: [localhost, 127.0.0.1]}
  - {name: peer, profile: etcd-peer, hosts: [localhost, 127.0.0.1]}
sensu:
  backend-config: %[2]s
  agent-config: %[3]s
  backend-certificate: backend
  etcd-peer-certificate: peer
`, dir, backend, agent)), 0o644); err != nil {
		t.Fatal(err)
	}
	mustRun(t, dir, nil, "--config", cfg, "ca", "init")
	mustRun(t, dir, nil, "--config", cfg, "issue", "--all")
	// Phase 3 makes etcd require client certificates (phase 4 has no
	// effect on the open-source build); no daemon counts agents here.
	for p := 1; p <= 3; p++ {
		args := []string{"--config", cfg, "migrate", "apply", "--phase", fmt.Sprint(p), "--user", "root", "--print-only", "--force"}
		if p == 1 {
			args = append(args, "--bridge-api-port", fmt.Sprint(testpeer.FreePort(t)), "--bridge-agent-port", fmt.Sprint(testpeer.FreePort(t)))
		}
		mustRun(t, dir, nil, args...)
	}

	flags := sensuconfEtcdFlags(t, backend)
	for _, want := range []string{"--client-cert-auth=true", "--peer-client-cert-auth=true", fmt.Sprintf("--listen-client-urls=https://127.0.0.1:%d", client)} {
		if !strings.Contains(strings.Join(flags, " "), want) {
			t.Fatalf("generated etcd settings lack %s: %v", want, flags)
		}
	}
	etcd := exec.Command("etcd", append(flags, "--data-dir="+filepath.Join(dir, "etcd"), "--initial-cluster-state=new")...)
	logf, err := os.Create(filepath.Join(dir, "etcd.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	etcd.Stdout, etcd.Stderr = logf, logf
	if err := etcd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		etcd.Process.Signal(syscall.SIGTERM)
		etcd.Wait()
	}()

	state := filepath.Join(dir, "state")
	pair, err := tls.LoadX509KeyPair(filepath.Join(state, "backend.pem"), filepath.Join(state, "backend-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(filepath.Join(state, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	health := func(certs []tls.Certificate) (string, error) {
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: certs}}}
		resp, err := c.Get(fmt.Sprintf("https://127.0.0.1:%d/health", client))
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b), nil
	}
	// etcd-cert-file is also the backend's etcd client certificate.
	deadline := time.Now().Add(30 * time.Second)
	for {
		body, err := health([]tls.Certificate{pair})
		if err == nil && strings.Contains(body, `"health":"true"`) {
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "etcd.log"))
			t.Fatalf("etcd never became healthy over mTLS: %v %s\netcd log:\n%s", err, body, log)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if body, err := health(nil); err == nil {
		t.Errorf("etcd answered a client without a certificate (client-cert-auth not enforced): %s", body)
	}
}
