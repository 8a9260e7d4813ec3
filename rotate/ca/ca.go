package ca

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/internal/pki"
)

// File names inside a CA directory, as cfssljson -bare ca writes them.
const (
	CertFileName = "ca.pem"
	KeyFileName  = "ca-key.pem"
)

// backdate covers clock skew between this node and its peers: a cert that is
// "not valid yet" on a peer whose clock lags breaks every handshake.
const backdate = 5 * time.Minute

// CA is a loaded certificate authority.
type CA struct {
	Dir  string
	Cert *x509.Certificate // the signing certificate: the first in ca.pem
	Key  crypto.Signer
	// bundle is every certificate in ca.pem. During a rollover it holds
	// the new CA first and the old one after it, and every set issued
	// carries both, so certificates from either CA verify and sets that
	// share one ca.pem agree on its bytes.
	bundle []*x509.Certificate
	now    func() time.Time
}

// InitOptions shape a new CA. Callers pass the resolved config (ca.*):
// defaults live in config.ApplyDefaults only, so there are none here.
type InitOptions struct {
	CommonName string        // required
	KeyType    string        // "" is pki's default key type
	Lifetime   time.Duration // required
}

// Init creates a CA in dir (ca.pem, and ca-key.pem with mode 0600). It
// refuses to replace an existing CA, since every certificate it issued would
// stop verifying.
func Init(dir string, o InitOptions) (*CA, error) {
	certPath, keyPath := filepath.Join(dir, CertFileName), filepath.Join(dir, KeyFileName)
	for _, p := range []string{certPath, keyPath} {
		if _, err := os.Stat(p); err == nil {
			return nil, fmt.Errorf("%s already exists: a CA is already initialised in %s (replacing it would invalidate every certificate it issued; remove it by hand if you really mean to)", p, dir)
		}
	}
	if o.CommonName == "" {
		return nil, errors.New("a new CA needs a common name (ca.common-name)")
	}
	if o.Lifetime <= 0 {
		return nil, fmt.Errorf("a new CA needs a positive lifetime (ca.lifetime), not %s", o.Lifetime)
	}
	key, err := pki.GenerateKey(o.KeyType)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{CommonName: o.CommonName},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(o.Lifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		SubjectKeyId:          keyID(key.Public()),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("creating CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	keyPEM, err := pki.EncodePrivateKeyPEM(key)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating CA directory: %w", err)
	}
	if err := writeFile(keyPath, keyPEM, 0o600); err != nil {
		return nil, err
	}
	if err := writeFile(certPath, pki.EncodeCertificatesPEM(cert), 0o644); err != nil {
		return nil, err
	}
	return &CA{Dir: dir, Cert: cert, Key: key, bundle: []*x509.Certificate{cert}, now: time.Now}, nil
}

// Load reads the CA in dir. ca.pem may hold more than one CA (a rollover):
// the first is the one ca-key.pem belongs to and that signs.
func Load(dir string) (*CA, error) {
	certPath, keyPath := filepath.Join(dir, CertFileName), filepath.Join(dir, KeyFileName)
	if _, err := os.Stat(certPath); errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("no CA in %s (%s does not exist): create one with: sensu-tlsd ca init --dir %s", dir, CertFileName, dir)
	}
	certs, err := pki.ReadCertificates(certPath)
	if err != nil {
		return nil, err
	}
	key, err := pki.ReadPrivateKey(keyPath)
	if err != nil {
		return nil, err
	}
	cert := certs[0]
	if !cert.IsCA {
		return nil, fmt.Errorf("%s is not a CA certificate (basic constraints CA:FALSE)", certPath)
	}
	if !pki.KeyMatches(cert, key) {
		return nil, fmt.Errorf("%s does not belong to the first certificate in %s: the CA key and certificate must be a pair (during a rollover the new CA goes first)", keyPath, certPath)
	}
	return &CA{Dir: dir, Cert: cert, Key: key, bundle: certs, now: time.Now}, nil
}

// CertPEM is every CA certificate of ca.pem, PEM-encoded: the trust
// bundle for peers.
func (c *CA) CertPEM() []byte { return pki.EncodeCertificatesPEM(c.bundle...) }

// Request asks for one certificate.
type Request struct {
	Name       string // used for the CN when CommonName is ""
	Profile    pki.Profile
	CommonName string
	Hosts      []string // DNS names and IPs; serving profiles default to the CN
	KeyType    string
	Lifetime   time.Duration // required: the certificate's lifetime or defaults.lifetime
	URIs       []*url.URL    // URI SANs, such as an agent's sensu://NAMESPACE/NAME
	// Namespace, for profile agent, adds the URI SAN
	// sensu://NAMESPACE/CN that the proxy's agent-identity uri binds.
	Namespace string
}

// Issued is a new certificate with its key and the CA that signed it.
type Issued struct {
	Cert    *x509.Certificate
	CertPEM []byte
	KeyPEM  []byte
	CAPEM   []byte
}

// Issue signs a new certificate for r with a fresh key.
func (c *CA) Issue(r Request) (*Issued, error) {
	key, err := pki.GenerateKey(r.KeyType)
	if err != nil {
		return nil, err
	}
	is, err := c.Sign(key.Public(), r)
	if err != nil {
		return nil, err
	}
	if is.KeyPEM, err = pki.EncodePrivateKeyPEM(key); err != nil {
		return nil, err
	}
	return is, nil
}

// Sign signs a certificate for r on a public key whose private key is
// elsewhere (a CSR's); r.KeyType is ignored and KeyPEM is left empty.
func (c *CA) Sign(pub crypto.PublicKey, r Request) (*Issued, error) {
	if _, err := pki.ParseProfile(string(r.Profile)); err != nil {
		return nil, err
	}
	cn := r.CommonName
	if cn == "" {
		cn = r.Name
	}
	if cn == "" {
		return nil, errors.New("a certificate needs a name or a common name")
	}
	hosts, defaulted := r.Hosts, false
	if len(hosts) == 0 && r.Profile.Serves() {
		hosts, defaulted = []string{cn}, true
	}
	for _, h := range hosts {
		if err := pki.CheckHost(h); err != nil {
			if defaulted {
				return nil, fmt.Errorf("certificate %s: no hosts given, so the common name would be the SAN: %w: give hosts", cn, err)
			}
			return nil, fmt.Errorf("certificate %s: %w", cn, err)
		}
	}
	if r.Lifetime <= 0 {
		return nil, fmt.Errorf("certificate %s needs a positive lifetime (lifetime or defaults.lifetime), not %s", cn, r.Lifetime)
	}
	now := c.now()
	notAfter := now.Add(r.Lifetime)
	if notAfter.After(c.Cert.NotAfter) {
		// A leaf outliving its CA fails verification on that day anyway;
		// end it with the CA so the renewal schedule sees the real limit.
		notAfter = c.Cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             now.Add(-backdate),
		NotAfter:              notAfter,
		KeyUsage:              keyUsage(pub),
		ExtKeyUsage:           r.Profile.ExtKeyUsages(),
		BasicConstraintsValid: true,
		SubjectKeyId:          keyID(pub),
		URIs:                  r.URIs,
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	if r.Namespace != "" {
		switch {
		case r.Profile != pki.Agent:
			return nil, fmt.Errorf("certificate %s: a namespace binds an agent certificate (profile agent), not profile %s: remove namespace", cn, r.Profile)
		case !pki.ValidNamespace(r.Namespace):
			return nil, fmt.Errorf("certificate %s: namespace %q is not a Sensu namespace: use letters, digits, dots, hyphens and underscores", cn, r.Namespace)
		}
		u, err := url.Parse(pki.AgentURI(r.Namespace, cn))
		if err != nil {
			return nil, fmt.Errorf("certificate %s: namespace %q: %v", cn, r.Namespace, err)
		}
		tmpl.URIs = append(tmpl.URIs, u)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.Cert, pub, c.Key)
	if err != nil {
		return nil, fmt.Errorf("signing certificate %s: %w", cn, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &Issued{Cert: cert, CertPEM: pki.EncodeCertificatesPEM(cert), CAPEM: c.CertPEM()}, nil
}

// keyUsage is the guide's "signing, key encipherment": digitalSignature
// always, keyEncipherment only for RSA, where TLS key transport can use it.
func keyUsage(pub crypto.PublicKey) x509.KeyUsage {
	u := x509.KeyUsageDigitalSignature
	if _, ok := pub.(*rsa.PublicKey); ok {
		u |= x509.KeyUsageKeyEncipherment
	}
	return u
}

func randomSerial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return n.Add(n, big.NewInt(1))
}

func keyID(pub crypto.PublicKey) []byte {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil
	}
	sum := sha1.Sum(der)
	return sum[:]
}
