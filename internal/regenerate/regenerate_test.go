package regenerate

import (
	"context"
	"crypto/x509"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/config"
	"github.com/sensu-tlsd/sensu-tlsd/config/sensu"
	"github.com/sensu-tlsd/sensu-tlsd/internal/event"
	"github.com/sensu-tlsd/sensu-tlsd/internal/testca"
)

// writeCert writes a self-signed certificate for hosts with usages and
// returns its path.
func writeCert(t *testing.T, dir, name string, hosts []string, usages ...x509.ExtKeyUsage) string {
	t.Helper()
	c := testca.SelfSigned(t, testca.Leaf{CN: name, Hosts: hosts, ExtKeyUsage: usages, NoExtKeyUsage: len(usages) == 0,
		NotAfter: time.Now().Add(time.Hour)})
	path := filepath.Join(dir, name+".pem")
	testca.WriteFile(t, path, c.CertPEM, 0o644)
	return path
}

type recorder struct{ got []event.Change }

func (r *recorder) CertificateChanged(_ context.Context, c event.Change) error {
	r.got = append(r.got, c)
	return nil
}

func regenFixture(t *testing.T) (dir string, newSet event.Change) {
	t.Helper()
	dir = t.TempDir()
	cert := writeCert(t, dir, "backend-gen2", []string{"localhost", "127.0.0.1"}, x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth)
	ca := writeCert(t, dir, "ca-gen2", []string{"ca"})
	return dir, event.Change{Name: "backend", Reason: event.ReasonRenewal, CertFile: cert, KeyFile: cert, CAFile: ca,
		Files: []string{cert, ca}}
}

func TestRegeneratorFollowsMovedPaths(t *testing.T) {
	dir, c := regenFixture(t)
	oldCert := writeCert(t, dir, "backend-gen1", []string{"localhost", "127.0.0.1"}, x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth)
	backend := filepath.Join(dir, "backend.yml")
	src := "---\n# managed elsewhere too\nstate-dir: /var/lib/sensu\napi-url: \"https://localhost:8080\"\ncert-file: \"" + oldCert + "\"  # api cert\nkey-file: \"" + oldCert + "\"\ntrusted-ca-file: \"" + oldCert + "\"\n"
	if err := os.WriteFile(backend, []byte(src), 0o640); err != nil {
		t.Fatal(err)
	}
	agent := filepath.Join(dir, "agent.yml")
	if err := os.WriteFile(agent, []byte("backend-url:\n  - wss://localhost:8081\ntrusted-ca-file: "+oldCert+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := filepath.Join(dir, "sensu-backend")
	if err := os.WriteFile(env, []byte("SENSU_BACKEND_CERT_FILE="+oldCert+"\nSENSU_BACKEND_LOG_LEVEL=info\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	next := &recorder{}
	g := &Regenerator{Files: sensu.Files{Backend: backend, Agent: agent, BackendEnv: []string{env}}, BackendCertificate: "backend", LintUser: "root", Next: next}
	if err := g.CertificateChanged(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(backend)
	want := strings.NewReplacer("\""+oldCert+"\"  # api cert", "\""+c.CertFile+"\"  # api cert").Replace(src)
	want = strings.Replace(want, "key-file: \""+oldCert, "key-file: \""+c.KeyFile, 1)
	want = strings.Replace(want, "trusted-ca-file: \""+oldCert, "trusted-ca-file: \""+c.CAFile, 1)
	if string(got) != want {
		t.Errorf("backend.yml:\n%s\nwant:\n%s", got, want)
	}
	if b, _ := os.ReadFile(backend + sensu.BackupSuffix); string(b) != src {
		t.Error("no backup of the previous backend.yml")
	}
	if a, _ := os.ReadFile(agent); !strings.Contains(string(a), "trusted-ca-file: "+c.CAFile) {
		t.Errorf("agent.yml CA not followed:\n%s", a)
	}
	if e, _ := os.ReadFile(env); string(e) != "SENSU_BACKEND_CERT_FILE="+c.CertFile+"\nSENSU_BACKEND_LOG_LEVEL=info\n" {
		t.Errorf("env file:\n%s", e)
	}
	if len(next.got) != 1 {
		t.Fatalf("next got %d changes", len(next.got))
	}
	for _, p := range []string{backend, agent, env, c.CertFile} {
		if !slices.Contains(next.got[0].Files, p) {
			t.Errorf("Files passed on %v lacks %s", next.got[0].Files, p)
		}
	}

	// The same change again changes nothing and adds no Sensu file.
	next.got = nil
	if err := g.CertificateChanged(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	if len(next.got) != 1 || len(next.got[0].Files) != len(c.Files) {
		t.Errorf("second delivery: %+v", next.got)
	}
}

func TestRegeneratorNeverTurnsTLSOn(t *testing.T) {
	dir, c := regenFixture(t)
	backend := filepath.Join(dir, "backend.yml")
	src := "state-dir: /var/lib/sensu\napi-url: http://localhost:8080\n"
	if err := os.WriteFile(backend, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	next := &recorder{}
	g := &Regenerator{Files: sensu.Files{Backend: backend}, BackendCertificate: "backend", Next: next}
	if err := g.CertificateChanged(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(backend); string(got) != src {
		t.Errorf("plaintext backend.yml was edited:\n%s", got)
	}
	if _, err := os.Stat(backend + sensu.BackupSuffix); !os.IsNotExist(err) {
		t.Error("a backup was written for an untouched file")
	}
	if len(next.got) != 1 {
		t.Error("the change was not handed on")
	}
}

func TestRegeneratorRefusesAnInvalidResult(t *testing.T) {
	dir, c := regenFixture(t)
	c.CAFile = filepath.Join(dir, "no-such-ca.pem")
	backend := filepath.Join(dir, "backend.yml")
	src := "api-url: https://localhost:8080\ncert-file: " + c.CertFile + "\nkey-file: " + c.KeyFile + "\ntrusted-ca-file: /dev/null\n"
	if err := os.WriteFile(backend, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	next := &recorder{}
	g := &Regenerator{Files: sensu.Files{Backend: backend}, BackendCertificate: "backend", LintUser: "root", Next: next}
	err := g.CertificateChanged(context.Background(), c)
	if err == nil || !strings.Contains(err.Error(), "refusing to rewrite") || !strings.Contains(err.Error(), "no-such-ca.pem does not exist") {
		t.Fatalf("err = %v, want a refusal naming the missing CA", err)
	}
	if got, _ := os.ReadFile(backend); string(got) != src {
		t.Error("a refused rewrite changed the file")
	}
	if len(next.got) != 0 {
		t.Error("a refused change was handed on")
	}
}

func TestRegeneratorPeerAndAgentCertificates(t *testing.T) {
	dir := t.TempDir()
	peer := writeCert(t, dir, "peer", []string{"10.0.0.1"}, x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth)
	backend := filepath.Join(dir, "backend.yml")
	if err := os.WriteFile(backend, []byte("etcd-listen-peer-urls: https://10.0.0.1:2380\netcd-initial-advertise-peer-urls: https://10.0.0.1:2380\netcd-peer-cert-file: /old/peer.pem\netcd-peer-key-file: /old/peer-key.pem\ncert-file: /old/api.pem\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	agentCert := writeCert(t, dir, "agent", nil, x509.ExtKeyUsageClientAuth)
	agent := filepath.Join(dir, "agent.yml")
	if err := os.WriteFile(agent, []byte("backend-url: [wss://10.0.0.1:8081]\ncert-file: /old/agent.pem\nkey-file: /old/agent-key.pem\ntrusted-ca-file: /old/ca.pem\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	g := &Regenerator{Files: sensu.Files{Backend: backend, Agent: agent}, BackendCertificate: "backend", EtcdPeerCertificate: "peer", AgentCertificate: "agent"}
	if err := g.CertificateChanged(context.Background(), event.Change{Name: "peer", CertFile: peer, KeyFile: peer, CAFile: peer}); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(backend)
	if want := "etcd-listen-peer-urls: https://10.0.0.1:2380\netcd-initial-advertise-peer-urls: https://10.0.0.1:2380\netcd-peer-cert-file: " + peer + "\netcd-peer-key-file: " + peer + "\ncert-file: /old/api.pem\n"; string(b) != want {
		t.Errorf("backend.yml after a peer rotation:\n%s\nwant\n%s", b, want)
	}
	if err := g.CertificateChanged(context.Background(), event.Change{Name: "agent", CertFile: agentCert, KeyFile: agentCert, CAFile: agentCert}); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(agent)
	if want := "backend-url: [wss://10.0.0.1:8081]\ncert-file: " + agentCert + "\nkey-file: " + agentCert + "\ntrusted-ca-file: " + agentCert + "\n"; string(a) != want {
		t.Errorf("agent.yml after an agent rotation:\n%s\nwant\n%s", a, want)
	}
}

func TestNewRegeneratorFromConfig(t *testing.T) {
	cfg := &config.Config{}
	if New(cfg, nil) != nil {
		t.Error("a regenerator was built with sensu.manage off")
	}
	cfg.Sensu = config.Sensu{Manage: true, BackendConfig: "/etc/sensu/backend.yml", BackendCertificate: "backend",
		EtcdPeerCertificate: "peer", AgentCertificate: "agent", Commercial: true, AgentMTLS: true}
	next := &recorder{}
	g := New(cfg, next)
	if g.Files.Backend != "/etc/sensu/backend.yml" || g.Files.Agent != "" || g.BackendCertificate != "backend" ||
		g.EtcdPeerCertificate != "peer" || g.AgentCertificate != "agent" || !g.Commercial || g.Next != next {
		t.Errorf("regenerator %+v", g)
	}
	if want := []string{"/etc/default/sensu-backend", "/etc/sysconfig/sensu-backend"}; !slices.Equal(g.Files.BackendEnv, want) {
		t.Errorf("backend env files %q, want the packages' %q", g.Files.BackendEnv, want)
	}
	cfg.Sensu.BackendEnvFiles = []string{"/srv/sensu/backend.env"}
	if g := New(cfg, next); !slices.Equal(g.Files.BackendEnv, cfg.Sensu.BackendEnvFiles) {
		t.Errorf("backend env files %q, want sensu.backend-env-files %q", g.Files.BackendEnv, cfg.Sensu.BackendEnvFiles)
	}
}

// TestRegeneratorSkipsAMissingEnvFile: the packaged units load their
// environment files with EnvironmentFile=-, so one that does not exist is
// not an error; backend.yml is still followed.
func TestRegeneratorSkipsAMissingEnvFile(t *testing.T) {
	dir, c := regenFixture(t)
	backend := filepath.Join(dir, "backend.yml")
	if err := os.WriteFile(backend, []byte("api-url: https://localhost:8080\ncert-file: /old/backend.pem\nkey-file: /old/backend.pem\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	next := &recorder{}
	g := &Regenerator{Files: sensu.Files{Backend: backend, BackendEnv: []string{filepath.Join(dir, "no-such-env")}},
		BackendCertificate: "backend", LintUser: "root", Next: next}
	if err := g.CertificateChanged(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(backend); !strings.Contains(string(b), "cert-file: "+c.CertFile) {
		t.Errorf("backend.yml not followed:\n%s", b)
	}
	if len(next.got) != 1 || !slices.Contains(next.got[0].Files, backend) {
		t.Errorf("handed on %+v, want one change naming %s", next.got, backend)
	}
}
