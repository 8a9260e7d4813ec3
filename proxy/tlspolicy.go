package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"slices"
)

// intermediateSuites are Mozilla's "intermediate" TLS 1.2 suites that Go
// implements: ECDHE with AEAD only. TLS 1.3 suites are not configurable in
// Go and are all strong.
var intermediateSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// Policy is the TLS policy of one side of a listener.
type Policy struct {
	// TLS13Only refuses TLS 1.2; the default minimum is TLS 1.2.
	TLS13Only bool
	// ALPN lists the application protocols offered or accepted, in order
	// of preference. Empty means no ALPN, so clients fall back to HTTP/1.1,
	// which is what a byte relay to a plaintext Sensu port can carry.
	ALPN []string
}

func (p Policy) minVersion() uint16 {
	if p.TLS13Only {
		return tls.VersionTLS13
	}
	return tls.VersionTLS12
}

// ClientAuth is mutual TLS on a listener: client certificates must chain
// to CAs and pass Allow.
type ClientAuth struct {
	CAs   *CAPool
	Allow AllowList
}

// AllowList admits a verified client certificate by its common name, a
// DNS SAN or a URI SAN. An empty list admits every certificate the CA
// verifies.
type AllowList struct {
	CN  []string
	DNS []string
	URI []string
}

// ErrClientNotAllowed is the handshake error for a client certificate that
// verifies but is on no allow-list.
var ErrClientNotAllowed = errors.New("client certificate is not on the allow-list")

func (a AllowList) empty() bool { return len(a.CN)+len(a.DNS)+len(a.URI) == 0 }

// Permits reports whether leaf is admitted.
func (a AllowList) Permits(leaf *x509.Certificate) bool {
	if a.empty() {
		return true
	}
	if slices.Contains(a.CN, leaf.Subject.CommonName) {
		return true
	}
	for _, d := range leaf.DNSNames {
		if slices.Contains(a.DNS, d) {
			return true
		}
	}
	for _, u := range leaf.URIs {
		if slices.Contains(a.URI, u.String()) {
			return true
		}
	}
	return false
}

// serverTLSConfig is the config for accepting TLS clients. Session tickets
// stay on: crypto/tls rotates their keys itself (a new key every day, each
// accepted for a week), and resumption is what makes reconnect storms
// cheap.
func serverTLSConfig(p Policy, certs CertSource, auth *ClientAuth) *tls.Config {
	cfg := &tls.Config{
		MinVersion:     p.minVersion(),
		CipherSuites:   intermediateSuites,
		GetCertificate: certs.GetCertificate,
		NextProtos:     p.ALPN,
	}
	if auth != nil {
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
		allow := auth.Allow
		if !allow.empty() {
			cfg.VerifyConnection = func(cs tls.ConnectionState) error {
				if len(cs.PeerCertificates) == 0 || !allow.Permits(cs.PeerCertificates[0]) {
					return ErrClientNotAllowed
				}
				return nil
			}
		}
	}
	if auth != nil {
		followClientCAs(cfg, auth.CAs)
	}
	return cfg
}

// clientTLSConfig is the config for connecting to TLS targets: verify
// against roots (system roots when nil) and present a client certificate
// when certs has one.
func clientTLSConfig(p Policy, roots *x509.CertPool, certs CertSource) *tls.Config {
	cfg := &tls.Config{
		MinVersion:         p.minVersion(),
		CipherSuites:       intermediateSuites,
		RootCAs:            roots,
		NextProtos:         p.ALPN,
		ClientSessionCache: tls.NewLRUClientSessionCache(64),
	}
	if certs != nil {
		cfg.GetClientCertificate = certs.GetClientCertificate
	}
	return cfg
}

// LoadCertPool reads a PEM CA bundle.
func LoadCertPool(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading CA bundle: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA bundle %s holds no PEM certificate; give a file with -----BEGIN CERTIFICATE----- blocks", path)
	}
	return pool, nil
}
