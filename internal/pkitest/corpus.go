package pkitest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// CA is a throwaway certificate authority.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
	PEM  []byte
}

var serial atomic.Int64

func nextSerial() *big.Int { return big.NewInt(time.Now().UnixNano() + serial.Add(1)) }

// NewCA makes a CA valid from an hour ago for a year.
func NewCA(t testing.TB, cn string) *CA {
	t.Helper()
	key := ecKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: nextSerial(), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(365 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	c := sign(t, tmpl, nil, key, nil)
	return &CA{Cert: c, Key: key, PEM: encode(c)}
}

// Leaf shapes one certificate; the zero value is a good serving
// certificate (serverAuth and clientAuth) for Hosts, valid for 90 days.
type Leaf struct {
	Hosts       []string
	NotBefore   time.Time
	NotAfter    time.Time
	EKU         []x509.ExtKeyUsage
	RSABits     int  // 0: ECDSA P-256
	SelfSignCA  bool // a self-signed CA:TRUE certificate, not one issued by the CA
	NoSANs      bool
	AppendCerts []*x509.Certificate // sent after the leaf in the certificate file
}

// Issue returns the PEM certificate (chain) and key of l.
func (ca *CA) Issue(t testing.TB, l Leaf) (certPEM, keyPEM []byte) {
	t.Helper()
	var key crypto.Signer = ecKey(t)
	if l.RSABits > 0 {
		k, err := rsa.GenerateKey(rand.Reader, l.RSABits)
		if err != nil {
			t.Fatal(err)
		}
		key = k
	}
	cn := "leaf"
	if len(l.Hosts) > 0 {
		cn = l.Hosts[0]
	}
	tmpl := &x509.Certificate{
		SerialNumber: nextSerial(), Subject: pkix.Name{CommonName: cn},
		NotBefore: l.NotBefore, NotAfter: l.NotAfter, ExtKeyUsage: l.EKU,
		KeyUsage: x509.KeyUsageDigitalSignature, BasicConstraintsValid: true,
	}
	if tmpl.NotBefore.IsZero() {
		tmpl.NotBefore = time.Now().Add(-time.Hour)
	}
	if tmpl.NotAfter.IsZero() {
		tmpl.NotAfter = time.Now().Add(90 * 24 * time.Hour)
	}
	if tmpl.ExtKeyUsage == nil {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	}
	if !l.NoSANs {
		for _, h := range l.Hosts {
			if ip := net.ParseIP(h); ip != nil {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			} else {
				tmpl.DNSNames = append(tmpl.DNSNames, h)
			}
		}
	}
	var c *x509.Certificate
	if l.SelfSignCA {
		tmpl.IsCA, tmpl.KeyUsage = true, tmpl.KeyUsage|x509.KeyUsageCertSign
		c = sign(t, tmpl, nil, key, nil)
	} else {
		c = sign(t, tmpl, ca.Cert, key, ca.Key)
	}
	certPEM = encode(append([]*x509.Certificate{c}, l.AppendCerts...)...)
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return certPEM, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// Bad is one certificate every gate refuses: Reason and Fix are phrases
// of the refusal.
type Bad struct {
	Name        string
	Cert, Key   []byte
	Reason, Fix string
}

// Corpus is every class of bad certificate, each issued for hosts by ca
// (or by nobody): what a `mv` over a served certificate might bring.
func Corpus(t testing.TB, ca *CA, hosts []string) []Bad {
	t.Helper()
	now := time.Now()
	stranger := NewCA(t, "some other root")
	bad := func(name string, l Leaf, reason, fix string) Bad {
		if l.Hosts == nil {
			l.Hosts = hosts
		}
		c, k := ca.Issue(t, l)
		return Bad{Name: name, Cert: c, Key: k, Reason: reason, Fix: fix}
	}
	copies := make([]*x509.Certificate, 0, 3000)
	for range 3000 { // about 1.3 MB: over the read limit
		copies = append(copies, ca.Cert)
	}
	return []Bad{
		bad("self-signed CA", Leaf{SelfSignCA: true}, "basic constraints CA:TRUE", "a service must present a CA:FALSE certificate issued by its CA"),
		bad("expired", Leaf{NotBefore: now.Add(-50 * time.Minute), NotAfter: now.Add(-30 * time.Minute)}, "expired on", "issue a new one"),
		bad("expired before its CA", Leaf{NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(-24 * time.Hour)}, "expired on", "issue a new one"),
		bad("not yet valid", Leaf{NotBefore: now.Add(24 * time.Hour), NotAfter: now.Add(90 * 24 * time.Hour)}, "not valid yet", "check this machine's clock"),
		bad("codeSigning only", Leaf{EKU: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}}, "but the certificate has only codeSigning", "reissue it with profile"),
		bad("no SAN", Leaf{NoSANs: true}, "has no subject alternative names", "reissue it with the hosts"),
		bad("RSA 1024", Leaf{RSABits: 1024}, "RSA key of 1024 bits is below the minimum of 2048", "reissue with key-type"),
		bad("a bundle after the leaf", Leaf{AppendCerts: []*x509.Certificate{stranger.Cert, ca.Cert}}, "did not sign certificate 1", "put CA bundles in the ca-file"),
		bad("oversized", Leaf{AppendCerts: copies}, "file is larger than 1 MiB", "give the file that holds only that"),
	}
}

// WritePair writes certPEM and keyPEM (0600) to the two paths through a
// rename each, as installers replace files.
func WritePair(t testing.TB, certFile, keyFile string, certPEM, keyPEM []byte) {
	t.Helper()
	for _, f := range []struct {
		path string
		data []byte
		mode os.FileMode
	}{{keyFile, keyPEM, 0o600}, {certFile, certPEM, 0o644}} {
		tmp := filepath.Join(filepath.Dir(f.path), "."+filepath.Base(f.path)+".new")
		if err := os.WriteFile(tmp, f.data, f.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, f.path); err != nil {
			t.Fatal(err)
		}
	}
}

func ecKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func sign(t testing.TB, tmpl, parent *x509.Certificate, key, parentKey crypto.Signer) *x509.Certificate {
	t.Helper()
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func encode(certs ...*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}
