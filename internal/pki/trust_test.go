package pki_test

import (
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/internal/pki"
	"github.com/sensu-tlsd/sensu-tlsd/rotate/ca"
)

// failed returns the checks Validate failed, by name.
func failed(t *testing.T, s *pki.Set, p pki.Policy) map[string]string {
	t.Helper()
	err := pki.Validate(s, p)
	var ve *pki.ValidationError
	if err != nil && !errors.As(err, &ve) {
		t.Fatalf("Validate: %v, want a ValidationError", err)
	}
	out := map[string]string{}
	if ve != nil {
		for _, f := range ve.Failed {
			out[f.Name] = f.Detail
		}
	}
	return out
}

func TestASelfSignedLeafIsNotItsOwnTrust(t *testing.T) {
	dir := t.TempDir()
	// What an exec script might do: a self-signed CA:TRUE certificate,
	// copied as the CA bundle. It verifies to itself.
	openssl(t, dir, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1",
		"-subj", "/CN=backend-1", "-addext", "subjectAltName=DNS:backend-1", "-keyout", "k.pem", "-out", "c.pem")
	set, err := pki.LoadSet(filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem"), filepath.Join(dir, "c.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if f := failed(t, set, pki.Policy{Hosts: []string{"backend-1"}}); !strings.Contains(f[pki.CheckLeaf], "CA:TRUE") {
		t.Errorf("self-signed CA:TRUE leaf: failures %v, want the leaf check to name CA:TRUE", f)
	}
	// The same with CA:FALSE: still nothing but itself vouches for it.
	openssl(t, dir, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1",
		"-subj", "/CN=backend-1", "-addext", "basicConstraints=critical,CA:FALSE", "-keyout", "k2.pem", "-out", "c2.pem")
	set, err = pki.LoadSet(filepath.Join(dir, "c2.pem"), filepath.Join(dir, "k2.pem"), filepath.Join(dir, "c2.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if f := failed(t, set, pki.Policy{}); !strings.Contains(f[pki.CheckLeaf], "its own CA") {
		t.Errorf("self-signed leaf as its own bundle: failures %v, want the leaf check", f)
	}
	// A CA file inspected on its own (status ca.pem) is not a leaf.
	if f := failed(t, &pki.Set{Chain: set.Chain, Key: set.Key, CA: set.Chain, CertFile: "ca.pem"}, pki.Policy{CA: true}); f[pki.CheckLeaf] != "" {
		t.Errorf("a trust bundle inspected as a CA failed the leaf check: %v", f)
	}
}

func TestTrustedCAIsTheTrustNotTheBundle(t *testing.T) {
	_, set := issue(t, ca.Request{Name: "backend-1", Profile: pki.Backend, Hosts: []string{"backend-1"}})
	other, _ := issue(t, ca.Request{Name: "x", Profile: pki.Server})
	p := pki.Policy{Profile: pki.Backend, Hosts: []string{"backend-1"}, Trusted: []*x509.Certificate{other.Cert}, TrustedFile: "/etc/sensu/trusted-ca.pem"}
	f := failed(t, set, p)
	for _, want := range []string{"not in the trusted CA /etc/sensu/trusted-ca.pem", shortID(other.Cert.SubjectKeyId), "chains to the CA \"test CA\" (key id " + shortID(set.Leaf().AuthorityKeyId)} {
		if !strings.Contains(f[pki.CheckChain], want) {
			t.Errorf("candidate from another CA than trusted-ca: chain failure %q, want %q", f[pki.CheckChain], want)
		}
	}
	// A rollover: trusted-ca holds the old and the new CA.
	p.Trusted = append(p.Trusted, set.CA...)
	if f := failed(t, set, p); len(f) != 0 {
		t.Errorf("trusted-ca with the issuing CA beside another: %v", f)
	}
}

func TestWrongCAMessageTellsSameNamedCAsApart(t *testing.T) {
	// Two CAs with the name every `ca init` gives.
	a, set := issue(t, ca.Request{Name: "backend-1", Profile: pki.Backend})
	b, _ := issue(t, ca.Request{Name: "x", Profile: pki.Server})
	if a.Cert.Subject.CommonName != b.Cert.Subject.CommonName {
		t.Fatal("test setup: the CAs should share a name")
	}
	f := failed(t, &pki.Set{Chain: set.Chain, Key: set.Key, CA: []*x509.Certificate{b.Cert}, CAFile: "ca.pem", CertFile: "c.pem"}, pki.Policy{})
	msg := f[pki.CheckChain]
	for _, want := range []string{"authority key id " + shortID(a.Cert.SubjectKeyId), "key id " + shortID(b.Cert.SubjectKeyId), "CA bundle ca.pem"} {
		if !strings.Contains(msg, want) {
			t.Errorf("wrong-CA message %q lacks %q", msg, want)
		}
	}
}

func TestExpiredCertificateIsReportedOnce(t *testing.T) {
	_, set := issue(t, ca.Request{Name: "backend-1", Profile: pki.Backend, Hosts: []string{"backend-1"}, Lifetime: time.Hour})
	f := failed(t, set, pki.Policy{Now: time.Now().Add(2 * time.Hour)})
	if len(f) != 1 || !strings.Contains(f[pki.CheckValidity], "expired on") {
		t.Fatalf("expired certificate: failures %v, want only the validity check", f)
	}
	if f := failed(t, set, pki.Policy{Now: time.Now().Add(-time.Hour)}); len(f) != 1 || f[pki.CheckValidity] == "" {
		t.Fatalf("not yet valid certificate: failures %v, want only the validity check", f)
	}
}

func TestSerialHexMatchesOpenSSL(t *testing.T) {
	dir := t.TempDir()
	// 0xABC has an odd number of hex digits: openssl prints 0ABC.
	openssl(t, dir, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1",
		"-subj", "/CN=serial", "-set_serial", "0xABC", "-keyout", "k.pem", "-out", "c.pem")
	out, err := exec.Command("openssl", "x509", "-noout", "-serial", "-in", filepath.Join(dir, "c.pem")).Output()
	if err != nil {
		t.Fatal(err)
	}
	certs, err := pki.ReadCertificates(filepath.Join(dir, "c.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := pki.SerialHex(certs[0]), strings.TrimPrefix(strings.TrimSpace(string(out)), "serial="); got != want {
		t.Fatalf("SerialHex %s, openssl says %s", got, want)
	}
	for n, want := range map[int64]string{0xABC: "0ABC", 0x1ABC: "1ABC", 1: "01", -0xABC: "-0ABC"} {
		if got := pki.SerialHex(&x509.Certificate{SerialNumber: big.NewInt(n)}); got != want {
			t.Errorf("SerialHex(%#x) = %s, want %s", n, got, want)
		}
	}
}

// shortID is a key id as the messages print it.
func shortID(id []byte) string {
	parts := make([]string, 0, 4)
	for _, b := range id[:4] {
		parts = append(parts, fmt.Sprintf("%02X", b))
	}
	return strings.Join(parts, ":")
}
