package rotate

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"

	"github.com/caddyserver/certmagic"
	"github.com/mholt/acmez/v3/acme"
	"go.uber.org/zap"

	"github.com/sensu-tlsd/sensu-tlsd/config"
	"github.com/sensu-tlsd/sensu-tlsd/internal/pki"
	"github.com/sensu-tlsd/sensu-tlsd/rotate/install"
)

// acmeIssuer obtains certificates from any ACME directory (step-ca, Vault,
// Let's Encrypt, Pebble) with certmagic's ACME issuer. Only the account
// lives in certmagic's storage; the key is generated here and the result
// is validated and installed by the manager like any other candidate.
type acmeIssuer struct {
	cfg      config.ACMEIssuer
	storage  string
	roots    *x509.CertPool // trust for the directory's TLS; nil = system
	caBundle []byte         // written to ca-file; nil = top of the chain
}

func newACMEIssuer(p Plan) (Issuer, error) {
	c := p.Issuer.ACME
	u, err := url.Parse(c.Directory)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("acme.directory %q: want the https URL of an ACME directory, e.g. https://ca.example:9000/acme/acme/directory", c.Directory)
	}
	if len(p.Hosts) == 0 {
		return nil, errors.New("hosts is empty: an ACME certificate needs at least one DNS name or IP the CA can validate")
	}
	switch c.Challenge {
	case "", "http-01", "tls-alpn-01":
	default:
		return nil, fmt.Errorf("acme.challenge %q: use http-01 or tls-alpn-01", c.Challenge)
	}
	if (c.EABKeyID == "") != (c.EABMACKey == "") {
		return nil, errors.New("acme.eab-key-id and acme.eab-mac-key go together: set both for external account binding, or neither")
	}
	a := &acmeIssuer{cfg: c, storage: c.Storage}
	if c.TrustedRoot != "" {
		certs, err := pki.ReadCertificates(c.TrustedRoot)
		if err != nil {
			return nil, fmt.Errorf("acme.trusted-root: %w", err)
		}
		a.roots = x509.NewCertPool()
		for _, cert := range certs {
			a.roots.AddCert(cert)
		}
	}
	if c.CABundle != "" {
		if _, err := pki.ReadCertificates(c.CABundle); err != nil {
			return nil, fmt.Errorf("acme.ca-bundle: %w", err)
		}
		if a.caBundle, err = pki.ReadFileLimited(c.CABundle, pki.MaxPEMFileBytes, "a PEM CA bundle"); err != nil {
			return nil, fmt.Errorf("acme.ca-bundle: %w", err)
		}
	}
	return a, nil
}

func (a *acmeIssuer) Issue(ctx context.Context, p Plan, _ string, _ *slog.Logger) (install.Set, error) {
	// The account key lives here: private to the daemon's user.
	if err := os.MkdirAll(a.storage, 0o700); err != nil {
		return install.Set{}, fmt.Errorf("acme storage %s: %w", a.storage, err)
	}
	if err := os.Chmod(a.storage, 0o700); err != nil {
		return install.Set{}, err
	}
	key, err := pki.GenerateKey(p.KeyType)
	if err != nil {
		return install.Set{}, err
	}
	csr, err := certRequest(p, key)
	if err != nil {
		return install.Set{}, err
	}
	var magic *certmagic.Config
	cache := certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert: func(certmagic.Certificate) (*certmagic.Config, error) { return magic, nil },
		Logger:           zap.NewNop(),
	})
	defer cache.Stop()
	magic = certmagic.New(cache, certmagic.Config{Storage: &certmagic.FileStorage{Path: a.storage}, Logger: zap.NewNop()})
	tmpl := certmagic.ACMEIssuer{
		CA:                      a.cfg.Directory,
		TestCA:                  a.cfg.Directory,
		Email:                   a.cfg.Email,
		Agreed:                  true,
		TrustedRoots:            a.roots,
		DisableHTTPChallenge:    a.cfg.Challenge == "tls-alpn-01",
		DisableTLSALPNChallenge: a.cfg.Challenge != "tls-alpn-01",
		ListenHost:              a.cfg.ListenHost,
		AltHTTPPort:             a.cfg.HTTPPort,
		AltTLSALPNPort:          a.cfg.TLSALPNPort,
		Logger:                  zap.NewNop(),
	}
	if a.cfg.EABKeyID != "" {
		tmpl.ExternalAccount = &acme.EAB{KeyID: a.cfg.EABKeyID, MACKey: a.cfg.EABMACKey}
	}
	iss := certmagic.NewACMEIssuer(magic, tmpl)
	magic.Issuers = []certmagic.Issuer{iss}
	res, err := iss.Issue(ctx, csr)
	if err != nil {
		return install.Set{}, fmt.Errorf("acme %s: %w", a.cfg.Directory, err)
	}
	chain, err := pki.ParseCertificatesPEM(res.Certificate)
	if err != nil {
		return install.Set{}, fmt.Errorf("acme %s returned an unreadable chain: %w", a.cfg.Directory, err)
	}
	keyPEM, err := pki.EncodePrivateKeyPEM(key)
	if err != nil {
		return install.Set{}, err
	}
	caPEM := a.caBundle
	if caPEM == nil {
		caPEM = pki.EncodeCertificatesPEM(chain[len(chain)-1])
	}
	return install.Set{Cert: res.Certificate, Key: keyPEM, CA: caPEM}, nil
}

// certRequest asks for every configured host as a SAN.
func certRequest(p Plan, key any) (*x509.CertificateRequest, error) {
	tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: p.CommonName}}
	for _, h := range p.Hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		return nil, fmt.Errorf("building the certificate request: %w", err)
	}
	return x509.ParseCertificateRequest(der)
}
