package rotate

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/config"
	"github.com/sensu-tlsd/sensu-tlsd/rotate/ca"
)

// TestPlansReportsEveryBadCertificate: `config validate` promises every
// problem, so two certificates that cannot be managed are both reported,
// each with the file, the certificate, the key and the fix.
func TestPlansReportsEveryBadCertificate(t *testing.T) {
	cfg := testConfig(t, time.Hour, "")
	cfg.File = "/etc/sensu/tlsd.yml"
	cfg.Certificates[0].Owner = "no-such-user-here"
	second := cfg.Certificates[0]
	second.Name, second.Owner = "backend-2", ""
	second.CertFile, second.KeyFile = second.CertFile+".2", second.KeyFile+".2"
	second.Issuer = config.Issuer{Type: "exec", Exec: config.ExecIssuer{Command: []string{"/bin/true"}}}
	second.CAFile, second.TrustedCA = second.CAFile+".2", "/nonexistent/ca.pem"
	cfg.Certificates = append(cfg.Certificates, second)
	_, err := resolve(cfg)
	for _, want := range []string{
		`/etc/sensu/tlsd.yml: certificates[0] (backend-1): install: owner "no-such-user-here": user: unknown user no-such-user-here: create the user or fix the owner key`,
		`/etc/sensu/tlsd.yml: certificates[1] (backend-2): trusted-ca: /nonexistent/ca.pem: file does not exist: create it with the CA certificates candidates must chain to, or remove trusted-ca`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Plans: %v\nwant it to report %q", err, want)
		}
	}
}

// TestPlansMarksTheLocalCAsOwnCAFile: a local-ca certificate whose ca-file
// is the CA's ca.pem (cfssljson's layout, however the path is spelled)
// leaves that file to the CA; any other ca-file, or another issuer, is
// linked into the certificate's generations as usual.
func TestPlansMarksTheLocalCAsOwnCAFile(t *testing.T) {
	for _, issuer := range []config.Issuer{{}, {Type: "exec", Exec: config.ExecIssuer{Command: []string{"/bin/true"}}}} {
		cfg := testConfig(t, time.Hour, "")
		cfg.CA.Dir = filepath.Join(filepath.Dir(cfg.StateDir), "ca")
		own := cfg.Certificates[0]
		own.Name, own.CertFile, own.KeyFile = "own", own.CertFile+".own", own.KeyFile+".own"
		own.CAFile = filepath.Join(cfg.CA.Dir, "..", "ca", ca.CertFileName)
		own.Issuer = issuer
		cfg.Certificates = append(cfg.Certificates, own)
		want := map[string]bool{"backend-1": false, "own": issuer.Type == ""}
		for _, p := range mustPlans(t, cfg) {
			if p.Paths.CASource != want[p.Name] {
				t.Errorf("%s (issuer %q): ca-file %s: CASource %v, want %v", p.Name, issuer.Type, p.Paths.CA, p.Paths.CASource, want[p.Name])
			}
		}
	}
}

// TestPlansReadSensuCertificateHostsFromBackendYML: a backend certificate
// the config ties to Sensu and gives no hosts gets every host its files
// must cover on this backend, read from backend.yml and the environment
// file over it (API and agent listeners, advertised client URLs, the
// advertised and listening peer URLs, and 127.0.0.1 for a member that
// talks to its peers over loopback); a separate etcd peer certificate
// gets the peer hosts alone; explicit hosts win.
func TestPlansReadSensuCertificateHostsFromBackendYML(t *testing.T) {
	cfg := testConfig(t, time.Hour, "")
	dir := filepath.Dir(cfg.StateDir)
	yml, env := filepath.Join(dir, "backend.yml"), filepath.Join(dir, "sensu-backend.env")
	writeFile(t, yml, `api-listen-address: "10.0.0.5:8080"
api-url: "https://backend-1.example.net:8080"
agent-host: "[::]"
etcd-advertise-client-urls: "https://backend-1.example.net:2379"
etcd-listen-client-urls: "https://0.0.0.0:2379"
etcd-initial-advertise-peer-urls: "https://localhost:2380"
etcd-listen-peer-urls: "https://127.0.0.1:2380"
`)
	// The environment file overrides the file, as sensu-backend reads it.
	writeFile(t, env, "SENSU_BACKEND_ETCD_ADVERTISE_CLIENT_URLS=\"https://backend-1.internal:2379 https://10.0.0.5:2379\"\n")
	cfg.Sensu = config.Sensu{BackendConfig: yml, BackendEnvFiles: []string{env}, BackendCertificate: "backend-1"}
	cfg.Certificates[0].Hosts = nil
	explicit := cfg.Certificates[0]
	explicit.Name, explicit.CertFile, explicit.KeyFile, explicit.Hosts = "dashboard", explicit.CertFile+".d", explicit.KeyFile+".d", []string{"dash.example.net"}
	cfg.Certificates = append(cfg.Certificates, explicit)
	plans := mustPlans(t, cfg)
	want := []string{"backend-1.example.net", "10.0.0.5", "backend-1.internal", "localhost", "127.0.0.1"}
	if !slices.Equal(plans[0].Hosts, want) || plans[0].HostsFrom != yml+", "+env {
		t.Errorf("backend-1 without hosts: hosts %v from %q, want %v from %s, %s", plans[0].Hosts, plans[0].HostsFrom, want, yml, env)
	}
	if !slices.Equal(plans[1].Hosts, explicit.Hosts) || plans[1].HostsFrom != "" {
		t.Errorf("a certificate with hosts: hosts %v from %q, want its own %v", plans[1].Hosts, plans[1].HostsFrom, explicit.Hosts)
	}

	cfg.Sensu.EtcdPeerCertificate = "dashboard"
	cfg.Certificates[1].Hosts = nil
	plans = mustPlans(t, cfg)
	if want := []string{"localhost", "127.0.0.1"}; !slices.Equal(plans[1].Hosts, want) {
		t.Errorf("etcd peer certificate: hosts %v, want the peer hosts %v", plans[1].Hosts, want)
	}
	if want := []string{"backend-1.example.net", "10.0.0.5", "backend-1.internal"}; !slices.Equal(plans[0].Hosts, want) {
		t.Errorf("backend certificate beside an etcd peer certificate: hosts %v, want %v", plans[0].Hosts, want)
	}

	// Sensu not installed yet: no defaults, and no error.
	cfg.Sensu.BackendConfig = filepath.Join(dir, "missing.yml")
	if plans = mustPlans(t, cfg); len(plans[0].Hosts) != 0 {
		t.Errorf("without backend.yml: hosts %v, want none", plans[0].Hosts)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
