package testca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// CA is a throw-away certificate authority.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
	PEM  []byte
}

// New makes a CA valid from an hour ago for a day.
func New(t testing.TB) *CA {
	t.Helper()
	key := newKey(t, 0)
	tmpl := &x509.Certificate{
		SerialNumber:          randomSerial(t),
		Subject:               pkix.Name{CommonName: "sensu-tlsd test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der := sign(t, tmpl, tmpl, key.Public(), key)
	return &CA{Cert: parse(t, der), Key: key, PEM: certPEM(der)}
}

// Pool is a certificate pool holding only the CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// Leaf describes a certificate to issue. The zero value of a field takes
// its default.
type Leaf struct {
	CN string
	// Hosts are DNS names and IP addresses, told apart by parsing.
	Hosts []string
	URIs  []string
	// ExtKeyUsage defaults to server and client auth; NoExtKeyUsage
	// leaves the extension out.
	ExtKeyUsage   []x509.ExtKeyUsage
	NoExtKeyUsage bool
	// RSABits picks an RSA key of that size instead of ECDSA P-256.
	RSABits int
	// IsCA makes a CA certificate (CA:TRUE, may sign certificates).
	IsCA bool
	// NotBefore defaults to an hour ago, NotAfter to 12 hours from now.
	NotBefore, NotAfter time.Time
}

// Issued is a certificate and its key.
type Issued struct {
	Cert            *x509.Certificate
	CertPEM, KeyPEM []byte
	// Serial is the lower-case hex of the serial number.
	Serial string
}

// Issue signs leaf with the CA.
func (ca *CA) Issue(t testing.TB, leaf Leaf) Issued {
	t.Helper()
	return issue(t, leaf, ca.Cert, ca.Key)
}

// Pair issues a server and client certificate for cn covering hosts, as a
// tls.Certificate.
func (ca *CA) Pair(t testing.TB, cn string, hosts ...string) tls.Certificate {
	t.Helper()
	return ca.Issue(t, Leaf{CN: cn, Hosts: hosts}).Pair(t)
}

// SelfSigned issues leaf signed by its own key.
func SelfSigned(t testing.TB, leaf Leaf) Issued {
	t.Helper()
	return issue(t, leaf, nil, nil)
}

// Pair is the certificate and key as a tls.Certificate.
func (i Issued) Pair(t testing.TB) tls.Certificate {
	t.Helper()
	pair, err := tls.X509KeyPair(i.CertPEM, i.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return pair
}

// Write writes the key (0600), then the certificate (0644), to the given
// paths, replacing files that are there by rename, as sensu-tlsd installs
// them: whoever reacts to the certificate's change finds its key.
func (i Issued) Write(t testing.TB, certFile, keyFile string) {
	t.Helper()
	WriteFile(t, keyFile, i.KeyPEM, 0o600)
	WriteFile(t, certFile, i.CertPEM, 0o644)
}

// Set is one certificate set written to disk.
type Set struct {
	CertFile, KeyFile, CAFile string
	Serial                    string // lower-case hex of the leaf serial
	Cert                      *x509.Certificate
}

// WriteSet issues a server and client leaf for cn covering 127.0.0.1, ::1
// and localhost, and writes NAME.pem, NAME-key.pem and ca.pem into dir,
// replacing files that are there.
func (ca *CA) WriteSet(t testing.TB, dir, name, cn string) Set {
	t.Helper()
	i := ca.Issue(t, Leaf{CN: cn, Hosts: []string{"localhost", "127.0.0.1", "::1"}})
	s := Set{
		CertFile: filepath.Join(dir, name+".pem"),
		KeyFile:  filepath.Join(dir, name+"-key.pem"),
		CAFile:   filepath.Join(dir, "ca.pem"),
		Serial:   i.Serial,
		Cert:     i.Cert,
	}
	i.Write(t, s.CertFile, s.KeyFile)
	WriteFile(t, s.CAFile, ca.PEM, 0o644)
	return s
}

// WriteFile replaces path by rename with data at mode.
func WriteFile(t testing.TB, path string, data []byte, mode os.FileMode) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// issue signs leaf with parent's key, or with its own when parent is nil.
func issue(t testing.TB, leaf Leaf, parent *x509.Certificate, parentKey crypto.Signer) Issued {
	t.Helper()
	key := newKey(t, leaf.RSABits)
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(t),
		Subject:      pkix.Name{CommonName: leaf.CN},
		NotBefore:    leaf.NotBefore,
		NotAfter:     leaf.NotAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  leaf.ExtKeyUsage,
	}
	if leaf.RSABits > 0 {
		tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment
	}
	if leaf.IsCA {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage |= x509.KeyUsageCertSign
	}
	if tmpl.NotBefore.IsZero() {
		tmpl.NotBefore = time.Now().Add(-time.Hour)
	}
	if tmpl.NotAfter.IsZero() {
		tmpl.NotAfter = time.Now().Add(12 * time.Hour)
	}
	if tmpl.ExtKeyUsage == nil && !leaf.NoExtKeyUsage {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	}
	for _, h := range leaf.Hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	for _, u := range leaf.URIs {
		pu, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, pu)
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der := sign(t, tmpl, parent, key.Public(), parentKey)
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	cert := parse(t, der)
	return Issued{
		Cert:    cert,
		CertPEM: certPEM(der),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		Serial:  hex.EncodeToString(cert.SerialNumber.Bytes()),
	}
}

func newKey(t testing.TB, rsaBits int) crypto.Signer {
	t.Helper()
	var key crypto.Signer
	var err error
	if rsaBits > 0 {
		key, err = rsa.GenerateKey(rand.Reader, rsaBits)
	} else {
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func sign(t testing.TB, tmpl, parent *x509.Certificate, pub crypto.PublicKey, parentKey crypto.Signer) []byte {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func parse(t testing.TB, der []byte) *x509.Certificate {
	t.Helper()
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func certPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func randomSerial(t testing.TB) *big.Int {
	t.Helper()
	// 0x40 in the top byte keeps the serial positive and 16 bytes long, so
	// its hex form has no leading zero to disagree about.
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	b[0] = 0x40 | (b[0] & 0x3f)
	return new(big.Int).SetBytes(b)
}
