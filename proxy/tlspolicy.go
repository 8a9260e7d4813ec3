package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"slices"

	"github.com/sensu-tlsd/sensu-tlsd/internal/pki"
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
	// ALPN lists application protocols in order of preference. The proxy
	// relays bytes and cannot translate between protocols, so the list
	// says what the other end speaks: for terminate and dual, what the
	// plaintext target speaks (a client offering none of them is refused
	// with no_application_protocol); for originate, what is offered to the
	// TLS targets on behalf of the plaintext client. Empty means no ALPN
	// at all: TLS clients then speak their default, HTTP/1.1, which every
	// plaintext Sensu port (API 8080, agent websocket 8081, dashboard
	// 3000, agent API 3031) understands, and a backend that would choose
	// h2 if offered answers the HTTP/1.1 a legacy agent sends.
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
	// CertOptional lets a client without a certificate finish the
	// handshake, for a listener that binds agents (Options.Identity): it
	// then answers with a 403 that says a certificate is needed, which an
	// agent logs, instead of a TLS alert.
	CertOptional bool
}

// AllowList admits a verified client certificate by its common name, a
// DNS SAN or a URI SAN. An empty list admits every certificate the CA
// verifies.
type AllowList struct {
	CN  []string
	DNS []string
	URI []string
}

// permits is the check of every handshake, after crypto/tls verified the
// chain: there is a certificate, and it is on the allow-list.
func (a *ClientAuth) permits(chain []*x509.Certificate) error {
	switch {
	case len(chain) == 0 && a.CertOptional:
		return nil
	case len(chain) == 0:
		return errNoClientCertificate
	case !a.Allow.Permits(chain[0]):
		leaf := chain[0]
		return fmt.Errorf("%w (CN %q, DNS %q, URI %q)", ErrClientNotAllowed, leaf.Subject.CommonName, leaf.DNSNames, leaf.URIs)
	}
	return nil
}

// admits checks a TLS client accepted under another configuration: it
// needs a certificate on the allow-list that chains to the bundle in use,
// as a handshake now would. A nil ClientAuth (no mTLS) admits every one.
func (a *ClientAuth) admits(p Peer) error {
	if a == nil {
		return nil
	}
	if err := a.permits(p.Chain); err != nil || len(p.Chain) == 0 {
		return err
	}
	opts := x509.VerifyOptions{Roots: a.CAs.Pool(), Intermediates: x509.NewCertPool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	for _, c := range p.Chain[1:] {
		opts.Intermediates.AddCert(c)
	}
	if _, err := p.Chain[0].Verify(opts); err != nil {
		return &tls.CertificateVerificationError{UnverifiedCertificates: p.Chain, Err: err}
	}
	return nil
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

// serverTLSConfig is the config for accepting TLS clients.
//
// Session tickets stay on, since resumption is what makes reconnect storms
// cheap. Their keys rotate without any code here: with SessionTicketKey
// unset and SetSessionTicketKeys never called, crypto/tls makes a new key
// every 24 hours and accepts tickets under each key for 7 days (its
// ticketKeyRotation and ticketKeyLifetime). Keys live in memory only, so a
// restart, or a listener updated in place, costs each client one full
// handshake. A config derived per handshake (followClientCAs) takes its
// keys from this one.
//
// With mTLS a client without a certificate is refused in VerifyConnection
// rather than by crypto/tls, so its failure has a type of its own
// (errNoClientCertificate) for the metrics.
func serverTLSConfig(p Policy, certs CertSource, auth *ClientAuth) *tls.Config {
	cfg := &tls.Config{
		MinVersion:     p.minVersion(),
		CipherSuites:   intermediateSuites,
		GetCertificate: certs.GetCertificate,
		NextProtos:     p.ALPN,
	}
	if auth != nil {
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
		cfg.VerifyConnection = func(cs tls.ConnectionState) error { return auth.permits(cs.PeerCertificates) }
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

// readError explains a file (what) that could not be read, with what to
// do when the error does not say it already; want is what the file should
// be.
func readError(what string, err error, want string) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("reading %s: %w; check the path, or write %s there first", what, err, want)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("reading %s: %w; make the file readable by the user sensu-tlsd runs as (keys 0600 or 0640 to its group)", what, err)
	case errors.Is(err, pki.ErrTooLarge):
		return fmt.Errorf("reading %s: %w", what, err) // the error names the limit and the fix
	}
	return fmt.Errorf("reading %s: %w; give %s", what, err, want)
}
