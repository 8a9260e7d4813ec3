package pki_test

import (
	"crypto"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/internal/pki"
	"github.com/sensu-tlsd/sensu-tlsd/internal/testca"
	"github.com/sensu-tlsd/sensu-tlsd/rotate/ca"
)

// selfSignedCA is a CA certificate valid from notBefore for a year.
func selfSignedCA(t *testing.T, cn string, notBefore time.Time) *x509.Certificate {
	t.Helper()
	return testca.SelfSigned(t, testca.Leaf{CN: cn, IsCA: true, NoExtKeyUsage: true, NotBefore: notBefore, NotAfter: notBefore.Add(365 * 24 * time.Hour)}).Cert
}

func TestServedChainHoldsOnlyWhatReachesTheAnchor(t *testing.T) {
	_, set := issue(t, ca.Request{Name: "backend-1", Profile: pki.Backend, Hosts: []string{"backend-1"}})
	stranger := selfSignedCA(t, "some other root", time.Now().Add(-time.Hour))
	copies := []*x509.Certificate{set.Leaf()}
	for range pki.MaxChainCertificates {
		copies = append(copies, set.CA[0])
	}
	cases := []struct {
		name  string
		chain []*x509.Certificate
		want  string // "" when the chain is fine
	}{
		{"leaf alone", []*x509.Certificate{set.Leaf()}, ""},
		{"leaf and its root", []*x509.Certificate{set.Leaf(), set.CA[0]}, ""},
		{"leaf and a stranger", []*x509.Certificate{set.Leaf(), stranger}, `certificate 2 of c.pem (CN "some other root") did not sign certificate 1`},
		{"root twice", []*x509.Certificate{set.Leaf(), set.CA[0], set.CA[0]}, `follows the self-signed root "test CA"`},
		{"over the count", copies, "holds 11 certificates, over the limit of 10"},
	}
	for _, c := range cases {
		s := &pki.Set{Chain: c.chain, Key: set.Key, CA: set.CA, CertFile: "c.pem", CAFile: "ca.pem"}
		f := failed(t, s, pki.Policy{Profile: pki.Backend, Hosts: []string{"backend-1"}})
		switch got := f[pki.CheckServed]; {
		case c.want == "" && len(f) > 0:
			t.Errorf("%s: failures %v, want none", c.name, f)
		case c.want != "" && !strings.Contains(got, c.want):
			t.Errorf("%s: served chain failure %q, want %q", c.name, got, c.want)
		case c.want != "" && !strings.Contains(got, "put CA bundles in the ca-file"):
			t.Errorf("%s: failure %q says no fix", c.name, got)
		}
	}
}

func TestAServingCertificateNeedsASAN(t *testing.T) {
	dir := t.TempDir()
	openssl(t, dir, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1",
		"-subj", "/CN=backend-1", "-addext", "basicConstraints=critical,CA:FALSE", "-addext", "extendedKeyUsage=serverAuth,clientAuth", "-keyout", "k.pem", "-out", "c.pem")
	set, err := pki.LoadSet(filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem"), "")
	if err != nil {
		t.Fatal(err)
	}
	err = pki.Admit(set, pki.Policy{Profile: pki.Server})
	if err == nil || !strings.Contains(err.Error(), `SANs: has no subject alternative names, and clients ignore the CN "backend-1": reissue it with the hosts`) {
		t.Fatalf("SAN-less serving certificate: %v", err)
	}
	if err := pki.Admit(set, pki.Policy{Profile: pki.Client}); err != nil {
		t.Fatalf("a client certificate needs no SAN: %v", err)
	}
}

// TestExpiredBeforeItsCASaysExpired: a leaf that expired before its CA
// was valid is an expired certificate, not a clock problem.
func TestExpiredBeforeItsCASaysExpired(t *testing.T) {
	now := time.Now()
	young := testca.New(t) // valid from an hour ago
	old := young.Issue(t, testca.Leaf{CN: "old", Hosts: []string{"old"}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		NotBefore: now.Add(-72 * time.Hour), NotAfter: now.Add(-48 * time.Hour)})
	leaf, leafKey, caCert := old.Cert, old.Pair(t).PrivateKey.(crypto.Signer), young.Cert
	f := failed(t, &pki.Set{Chain: []*x509.Certificate{leaf}, Key: leafKey, CA: []*x509.Certificate{caCert}, CertFile: "c.pem", CAFile: "ca.pem"}, pki.Policy{})
	if got := f[pki.CheckChain]; !strings.Contains(got, "the certificate expired on") || strings.Contains(got, "clock") {
		t.Errorf("chain failure %q, want it to say the certificate expired, not the clock", got)
	}
	if !strings.HasPrefix(f[pki.CheckValidity], "expired on") {
		t.Errorf("validity failure %q, want expired", f[pki.CheckValidity])
	}
}

func TestReadsAreBoundedAndNameTheLimit(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big.pem")
	if err := os.WriteFile(big, make([]byte, pki.MaxPEMFileBytes+1), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := pki.ReadCertificates(big)
	if err == nil || !strings.HasPrefix(err.Error(), big+": file is larger than 1 MiB, the limit for a PEM certificate chain or CA bundle") {
		t.Errorf("oversized certificate file: %v", err)
	}
	_, err = pki.ReadPrivateKey(big)
	if err == nil || !strings.HasPrefix(err.Error(), big+": file is larger than 64 KiB, the limit for a PEM private key") {
		t.Errorf("oversized key file: %v", err)
	}
}

func TestTightenKeyMode(t *testing.T) {
	key := filepath.Join(t.TempDir(), "k.pem")
	if err := os.WriteFile(key, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(key, 0o644); err != nil {
		t.Fatal(err)
	}
	found, changed, err := pki.TightenKeyMode(key, 0o600)
	if err != nil || !changed || found != 0o644 {
		t.Fatalf("TightenKeyMode(0644) = %04o, %v, %v", found, changed, err)
	}
	if fi, _ := os.Stat(key); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode after: %04o", fi.Mode().Perm())
	}
	if _, changed, _ := pki.TightenKeyMode(key, 0o600); changed {
		t.Fatal("a good mode was changed")
	}
}

func TestCheckBundleRefusesABundleThatVerifiesNothing(t *testing.T) {
	now := time.Now()
	current := selfSignedCA(t, "current CA", now.Add(-time.Hour))
	future := selfSignedCA(t, "future CA", now.Add(time.Hour))
	if err := pki.CheckBundle([]*x509.Certificate{future, current}, "ca.pem", now); err != nil {
		t.Errorf("a bundle with one CA valid now: %v", err)
	}
	err := pki.CheckBundle([]*x509.Certificate{future}, "ca.pem", now)
	if err == nil || !strings.HasPrefix(err.Error(), `ca.pem: no certificate in it is valid now ("future CA" key id`) {
		t.Errorf("a bundle with no CA valid now: %v", err)
	}
}
