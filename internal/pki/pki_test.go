package pki_test

import (
	"crypto/x509"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/internal/pki"
	"github.com/sensu-tlsd/sensu-tlsd/internal/testpeer"
	"github.com/sensu-tlsd/sensu-tlsd/rotate/ca"
)

// openssl runs the real openssl; keys written by it are what operators have.
func openssl(t *testing.T, dir string, args ...string) {
	t.Helper()
	testpeer.NeedPeer(t, testpeer.HasProgram("openssl"), "openssl not on PATH (Debian package openssl)")
	cmd := exec.Command("openssl", args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("openssl %v: %v\n%s", args, err, out)
	}
}

func TestReadPrivateKeyEncodings(t *testing.T) {
	dir := t.TempDir()
	openssl(t, dir, "genrsa", "-traditional", "-out", "rsa-pkcs1.pem", "2048")
	openssl(t, dir, "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "rsa-pkcs8.pem")
	openssl(t, dir, "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ec-sec1.pem")
	openssl(t, dir, "pkcs8", "-topk8", "-nocrypt", "-in", "ec-sec1.pem", "-out", "ec-pkcs8.pem")
	for name, want := range map[string]string{
		"rsa-pkcs1.pem": "RSA 2048", "rsa-pkcs8.pem": "RSA 2048",
		"ec-sec1.pem": "ECDSA P-256", "ec-pkcs8.pem": "ECDSA P-256",
	} {
		k, err := pki.ReadPrivateKey(filepath.Join(dir, name))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if got := pki.KeyDescription(k.Public()); got != want {
			t.Errorf("%s: read as %s, want %s", name, got, want)
		}
	}
}

func TestReadBadInputsNameTheFileAndTheProblem(t *testing.T) {
	dir := t.TempDir()
	openssl(t, dir, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-aes256", "-pass", "pass:secret", "-out", "encrypted.pem")
	openssl(t, dir, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "k.pem", "-subj", "/CN=x", "-out", "cert.pem", "-days", "1")
	openssl(t, dir, "x509", "-in", "cert.pem", "-outform", "der", "-out", "cert.der")
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("empty.pem", "")
	write("garbage.pem", "this is not a certificate\n")
	// Each want is the exact phrase after "PATH: ": a bare word such as
	// "empty" would also match the file name and pass on any error.
	cases := []struct {
		name string
		read func(string) error
		want string
	}{
		{"encrypted.pem", readKey, "the private key is encrypted; Sensu cannot use a passphrase-protected key"},
		{"empty.pem", readKey, "file is empty: expected a PEM private key"},
		{"empty.pem", readCert, "file is empty: expected a PEM certificate (-----BEGIN CERTIFICATE-----)"},
		{"garbage.pem", readCert, "no PEM certificate found: expected a -----BEGIN CERTIFICATE----- block"},
		{"garbage.pem", readKey, "no PEM private key found"},
		{"cert.pem", readKey, "no private key found: this file holds a certificate, not a key"},
		{"cert.der", readCert, "no PEM certificate found: the file looks like DER"},
		{"missing.pem", readCert, "file does not exist"},
	}
	for _, c := range cases {
		path := filepath.Join(dir, c.name)
		err := c.read(path)
		if err == nil {
			t.Errorf("%s: no error", c.name)
			continue
		}
		msg, named := strings.CutPrefix(err.Error(), path+": ")
		if !named || !strings.HasPrefix(msg, c.want) {
			t.Errorf("%s: error %q should be %q followed by %q", c.name, err, path+": ", c.want)
		}
	}
	if err := readKey(filepath.Join(dir, "encrypted.pem")); !errors.Is(err, pki.ErrEncryptedKey) {
		t.Errorf("encrypted key: got %v, want ErrEncryptedKey", err)
	}
}

func readKey(p string) error  { _, err := pki.ReadPrivateKey(p); return err }
func readCert(p string) error { _, err := pki.ReadCertificates(p); return err }

// issue makes a CA and one certificate with the real ca package.
func issue(t *testing.T, r ca.Request) (*ca.CA, *pki.Set) {
	t.Helper()
	dir := t.TempDir()
	c, err := ca.Init(dir, ca.InitOptions{CommonName: "test CA", Lifetime: 10 * 365 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if r.Lifetime == 0 {
		r.Lifetime = 90 * 24 * time.Hour
	}
	is, err := c.Issue(r)
	if err != nil {
		t.Fatal(err)
	}
	paths, err := ca.WriteFiles(dir, r.Name, is)
	if err != nil {
		t.Fatal(err)
	}
	set, err := pki.LoadSet(paths.Cert, paths.Key, paths.CA)
	if err != nil {
		t.Fatal(err)
	}
	return c, set
}

func TestValidateAcceptsAGoodSet(t *testing.T) {
	_, set := issue(t, ca.Request{Name: "backend-1", Profile: pki.Backend, Hosts: []string{"backend-1", "127.0.0.1"}})
	if err := pki.Validate(set, pki.Policy{Profile: pki.Backend, Hosts: []string{"backend-1", "127.0.0.1"}}); err != nil {
		t.Fatal(err)
	}
}

func TestValidateRejectsEachFlawWithItsReason(t *testing.T) {
	_, set := issue(t, ca.Request{Name: "backend-1", Profile: pki.Backend, Hosts: []string{"backend-1"}})
	_, other := issue(t, ca.Request{Name: "agent-1", Profile: pki.Agent})
	now := time.Now()
	cases := []struct {
		name   string
		set    pki.Set
		policy pki.Policy
		check  string
		want   string
	}{
		{"wrong key", pki.Set{Chain: set.Chain, Key: other.Key, CA: set.CA, KeyFile: "k.pem", CertFile: "c.pem"}, pki.Policy{}, pki.CheckKeyMatch, "does not belong"},
		{"wrong CA", pki.Set{Chain: set.Chain, Key: set.Key, CA: other.CA, CAFile: "other-ca.pem"}, pki.Policy{}, pki.CheckChain, "not in the CA bundle other-ca.pem"},
		{"missing SAN", *set, pki.Policy{Hosts: []string{"backend-2"}}, pki.CheckSANs, "does not cover backend-2"},
		{"wrong usage", *other, pki.Policy{Profile: pki.Backend}, pki.CheckUsages, "needs serverAuth"},
		{"expired", *set, pki.Policy{Now: now.Add(100 * 24 * time.Hour)}, pki.CheckValidity, "expired"},
		{"not yet valid", *set, pki.Policy{Now: now.Add(-time.Hour)}, pki.CheckValidity, "not valid yet"},
	}
	for _, c := range cases {
		err := pki.Validate(&c.set, c.policy)
		var ve *pki.ValidationError
		if !errors.As(err, &ve) {
			t.Errorf("%s: got %v, want a ValidationError", c.name, err)
			continue
		}
		found := false
		for _, f := range ve.Failed {
			if f.Name == c.check && strings.Contains(f.Detail, c.want) {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: %v does not fail %q with %q", c.name, err, c.check, c.want)
		}
	}
}

func TestValidateRejectsWeakRSA(t *testing.T) {
	dir := t.TempDir()
	openssl(t, dir, "req", "-x509", "-newkey", "rsa:1024", "-nodes", "-keyout", "k.pem", "-subj", "/CN=weak", "-out", "c.pem", "-days", "1")
	set, err := pki.LoadSet(filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem"), filepath.Join(dir, "c.pem"))
	if err != nil {
		t.Fatal(err)
	}
	err = pki.Validate(set, pki.Policy{})
	if err == nil || !strings.Contains(err.Error(), "RSA key of 1024 bits is below the minimum of 2048") {
		t.Fatalf("got %v, want a key strength failure", err)
	}
}

func TestProfilesCarryTheGuidesUsages(t *testing.T) {
	want := map[pki.Profile][]x509.ExtKeyUsage{
		pki.Backend:    {x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		pki.EtcdPeer:   {x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		pki.EtcdClient: {x509.ExtKeyUsageClientAuth},
		pki.Agent:      {x509.ExtKeyUsageClientAuth},
		pki.Server:     {x509.ExtKeyUsageServerAuth},
		pki.Client:     {x509.ExtKeyUsageClientAuth},
	}
	for p, usages := range want {
		_, set := issue(t, ca.Request{Name: string(p), Profile: p})
		got := set.Leaf().ExtKeyUsage
		if len(got) != len(usages) {
			t.Errorf("%s: EKUs %v, want %v", p, got, usages)
			continue
		}
		for i := range got {
			if got[i] != usages[i] {
				t.Errorf("%s: EKUs %v, want %v", p, got, usages)
			}
		}
	}
	if _, err := pki.ParseProfile("peer"); err == nil || !strings.Contains(err.Error(), "etcd-peer") {
		t.Errorf("ParseProfile(peer) = %v, want an error listing the profiles", err)
	}
}

func TestCheckHost(t *testing.T) {
	for _, h := range []string{"backend-1", "sensu.example.com", "*.example.com", "10.0.0.5", "::1", "xn--bcher-kva.example"} {
		if err := pki.CheckHost(h); err != nil {
			t.Errorf("CheckHost(%q) = %v, want nil", h, err)
		}
	}
	for _, h := range []string{"bad host!", "", "-lead.example", "trail-.example", "a..b", "[::1]", "under_score", "*", "a.*.example", strings.Repeat("a", 64)} {
		err := pki.CheckHost(h)
		if err == nil || !strings.Contains(err.Error(), "is neither an IP address nor a DNS name") {
			t.Errorf("CheckHost(%q) = %v, want it refused", h, err)
		}
	}
}

func TestCheckKeyMode(t *testing.T) {
	for _, m := range []os.FileMode{0o600, 0o640, 0o400, 0o660} {
		if err := pki.CheckKeyMode(m); err != nil {
			t.Errorf("CheckKeyMode(%04o) = %v", m, err)
		}
	}
	for _, m := range []os.FileMode{0o644, 0o602, 0o601, 0o777} {
		if err := pki.CheckKeyMode(m); err == nil {
			t.Errorf("CheckKeyMode(%04o) accepted a key every user can touch", m)
		}
	}
}

// TestEmptySANWarnsAndCNIsChecked: the guide's cfssl recipe leaves an
// empty DNS SAN; it is flagged without failing the set.
func TestEmptySANWarnsAndCNIsChecked(t *testing.T) {
	_, set := issue(t, ca.Request{Name: "backend-1", Profile: pki.Backend, Hosts: []string{"backend-1"}})
	leaf := *set.Leaf()
	leaf.DNSNames = []string{"", "backend-1"}
	withEmpty := pki.Set{Chain: []*x509.Certificate{&leaf}}
	for _, p := range []pki.Policy{{}, {Hosts: []string{"backend-1"}}} {
		var sans *pki.CheckResult
		for _, r := range pki.Checks(&withEmpty, p) {
			if r.Name == pki.CheckSANs {
				sans = &r
			}
		}
		if sans == nil || !sans.OK || !sans.Warning || !strings.HasPrefix(sans.Detail, "an empty DNS name is among the SANs") {
			t.Errorf("policy %+v: SANs result %+v, want a passing warning", p, sans)
		}
	}
	for _, r := range pki.Checks(set, pki.Policy{}) {
		if r.Name == pki.CheckSANs {
			t.Errorf("no hosts and no empty SAN, yet a SANs result: %+v", r)
		}
	}
	if err := pki.Validate(set, pki.Policy{CommonName: "backend-2"}); err == nil || !strings.Contains(err.Error(), `CN: subject CN is "backend-1" but must be "backend-2"`) {
		t.Errorf("wrong CN: %v", err)
	}
}
