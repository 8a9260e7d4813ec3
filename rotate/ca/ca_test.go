package ca_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/internal/pki"
	"github.com/sensu-tlsd/sensu-tlsd/rotate/ca"
)

func TestInitWritesAPrivateKeyAndRefusesToReplaceACA(t *testing.T) {
	dir := t.TempDir()
	c, err := ca.Init(dir, ca.InitOptions{CommonName: "Sensu CA", Lifetime: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if !c.Cert.IsCA || c.Cert.Subject.CommonName != "Sensu CA" {
		t.Fatalf("CA cert: IsCA=%v CN=%q", c.Cert.IsCA, c.Cert.Subject.CommonName)
	}
	fi, err := os.Stat(filepath.Join(dir, ca.KeyFileName))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("CA key mode %o, want 600", fi.Mode().Perm())
	}
	if _, err := ca.Init(dir, ca.InitOptions{CommonName: "Sensu CA", Lifetime: 24 * time.Hour}); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("second Init: %v, want 'already exists'", err)
	}
	if _, err := ca.Load(dir); err != nil {
		t.Fatalf("Load: %v", err)
	}
}

func TestLoadExplainsAMissingCA(t *testing.T) {
	dir := t.TempDir()
	_, err := ca.Load(dir)
	if err == nil || !strings.Contains(err.Error(), "sensu-tlsd ca init --dir "+dir) {
		t.Fatalf("Load of an empty dir: %v, want the command that fixes it", err)
	}
}

func TestIssueDefaultsHostsToTheCommonNameAndCapsAtTheCA(t *testing.T) {
	c, err := ca.Init(t.TempDir(), ca.InitOptions{CommonName: "test CA", Lifetime: 48 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	is, err := c.Issue(ca.Request{Name: "backend-1", Profile: pki.Backend, Lifetime: 90 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if got := pki.SANs(is.Cert); len(got) != 1 || got[0] != "backend-1" {
		t.Errorf("SANs %v, want [backend-1]", got)
	}
	if is.Cert.NotAfter.After(c.Cert.NotAfter) {
		t.Errorf("leaf NotAfter %v outlives the CA's %v", is.Cert.NotAfter, c.Cert.NotAfter)
	}
	agent, err := c.Issue(ca.Request{Name: "agent-1", Profile: pki.Agent, Lifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if len(agent.Cert.DNSNames)+len(agent.Cert.IPAddresses) != 0 || agent.Cert.Subject.CommonName != "agent-1" {
		t.Errorf("agent cert: CN %q SANs %v, want CN agent-1 and no SANs", agent.Cert.Subject.CommonName, pki.SANs(agent.Cert))
	}
}

func TestIssueKeyTypes(t *testing.T) {
	c, err := ca.Init(t.TempDir(), ca.InitOptions{CommonName: "test CA", Lifetime: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for kt, want := range map[string]string{"": "ECDSA P-256", "ecdsa-p384": "ECDSA P-384", "rsa-2048": "RSA 2048"} {
		is, err := c.Issue(ca.Request{Name: "x", Profile: pki.Server, KeyType: kt, Lifetime: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		if got := pki.KeyDescription(is.Cert.PublicKey); got != want {
			t.Errorf("key type %q gave %s, want %s", kt, got, want)
		}
	}
	if _, err := c.Issue(ca.Request{Name: "x", Profile: pki.Server, KeyType: "dsa", Lifetime: time.Hour}); err == nil || !strings.Contains(err.Error(), "ecdsa-p256") {
		t.Errorf("unknown key type: %v, want the list of choices", err)
	}
}

// TestMissingSettingsAreErrors: the CA takes its settings from the
// resolved config (config.ApplyDefaults), so a zero one is a caller's bug
// that must show, not a second default.
func TestMissingSettingsAreErrors(t *testing.T) {
	if _, err := ca.Init(t.TempDir(), ca.InitOptions{Lifetime: time.Hour}); err == nil || !strings.Contains(err.Error(), "ca.common-name") {
		t.Errorf("Init without a common name: %v", err)
	}
	if _, err := ca.Init(t.TempDir(), ca.InitOptions{CommonName: "x"}); err == nil || !strings.Contains(err.Error(), "ca.lifetime") {
		t.Errorf("Init without a lifetime: %v", err)
	}
	c, err := ca.Init(t.TempDir(), ca.InitOptions{CommonName: "x", Lifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Issue(ca.Request{Name: "a", Profile: pki.Server}); err == nil || !strings.Contains(err.Error(), "lifetime") {
		t.Errorf("Issue without a lifetime: %v", err)
	}
}

// TestRolloverBundleIsIssuedWhole: with the new CA first in ca.pem and the
// old one after it, certificates are signed by the new CA and carry both,
// so peers keep trusting certificates from either.
func TestRolloverBundleIsIssuedWhole(t *testing.T) {
	oldDir, newDir := t.TempDir(), t.TempDir()
	for _, d := range []string{oldDir, newDir} {
		if _, err := ca.Init(d, ca.InitOptions{CommonName: "Sensu CA", Lifetime: 24 * time.Hour}); err != nil {
			t.Fatal(err)
		}
	}
	oldPEM, _ := os.ReadFile(filepath.Join(oldDir, ca.CertFileName))
	newPEM, _ := os.ReadFile(filepath.Join(newDir, ca.CertFileName))
	os.WriteFile(filepath.Join(newDir, ca.CertFileName), append(append([]byte{}, newPEM...), oldPEM...), 0o644)
	c, err := ca.Load(newDir)
	if err != nil {
		t.Fatal(err)
	}
	is, err := c.Issue(ca.Request{Name: "backend-1", Profile: pki.Backend, Lifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if string(is.CAPEM) != string(newPEM)+string(oldPEM) {
		t.Fatal("the issued bundle is not ca.pem whole (new CA, then old)")
	}
	if err := is.Cert.CheckSignatureFrom(c.Cert); err != nil {
		t.Fatalf("not signed by the new (first) CA: %v", err)
	}
	// The old CA first with the new key is not a pair.
	os.WriteFile(filepath.Join(newDir, ca.CertFileName), append(append([]byte{}, oldPEM...), newPEM...), 0o644)
	if _, err := ca.Load(newDir); err == nil || !strings.Contains(err.Error(), "the new CA goes first") {
		t.Fatalf("ca.pem with the old CA first: %v", err)
	}
}

func TestIssueRefusesHostsThatAreNoName(t *testing.T) {
	c, err := ca.Init(t.TempDir(), ca.InitOptions{CommonName: "x", Lifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Issue(ca.Request{Name: "x", Profile: pki.Server, Lifetime: time.Hour, Hosts: []string{"x", "bad host!"}})
	if err == nil || err.Error() != `certificate x: host "bad host!" is neither an IP address nor a DNS name (letters, digits and hyphens, dot-separated, e.g. backend-1.example.com or 10.0.0.5)` {
		t.Errorf("bad host: %v", err)
	}
	_, err = c.Issue(ca.Request{Name: "my backend", Profile: pki.Backend, Lifetime: time.Hour})
	if err == nil || !strings.Contains(err.Error(), "no hosts given, so the common name would be the SAN") {
		t.Errorf("CN that is no host name, no hosts: %v", err)
	}
	if _, err := c.Issue(ca.Request{Name: "my agent", Profile: pki.Agent, Lifetime: time.Hour}); err != nil {
		t.Errorf("an agent CN needs no host syntax: %v", err)
	}
}

// An agent certificate given a namespace carries the URI SAN the proxy's
// agent-identity uri binds; other profiles and odd namespaces are refused.
func TestIssueAgentNamespaceAddsTheBindingURI(t *testing.T) {
	c, err := ca.Init(t.TempDir(), ca.InitOptions{CommonName: "Sensu CA", Lifetime: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	is, err := c.Issue(ca.Request{Name: "web-1", Profile: pki.Agent, Namespace: "prod", Lifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if len(is.Cert.URIs) != 1 || is.Cert.URIs[0].String() != "sensu://prod/web-1" {
		t.Fatalf("URI SANs %v, want sensu://prod/web-1", is.Cert.URIs)
	}
	for _, bad := range []struct {
		req  ca.Request
		want string
	}{
		{ca.Request{Name: "b", Profile: pki.Backend, Namespace: "prod", Lifetime: time.Hour}, "not profile backend: remove namespace"},
		{ca.Request{Name: "a", Profile: pki.Agent, Namespace: "prod/x", Lifetime: time.Hour}, `namespace "prod/x" is not a Sensu namespace`},
	} {
		if _, err := c.Issue(bad.req); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%+v: %v, want %q", bad.req, err, bad.want)
		}
	}
}
