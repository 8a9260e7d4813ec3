package agentcutover

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/internal/pki"
)

// defaultAgentPort is the port sensu-agent adds to a backend-url that has
// none.
const defaultAgentPort = "8081"

// Trust is how the follower decides a backend's certificate is the right
// one: a CA bundle file configuration management placed, or a pinned CA
// taken from the backends' handshake.
type Trust struct {
	CAFile string
	// Pin, when set, is the SHA-256 fingerprint of the CA certificate. A
	// ca-file that exists must hold it; a missing one is taken from the
	// chain a backend presents.
	Pin *pki.Fingerprint
}

// PinError is a backend whose chain holds no certificate with the pinned
// fingerprint.
type PinError struct {
	Backend  string
	Expected pki.Fingerprint
	Seen     []string // each presented certificate: fingerprint (subject)
}

func (e *PinError) Error() string {
	return fmt.Sprintf("backend %s presents no CA with the pinned fingerprint: expected %s, seen %s; "+
		"check agent-cutover.ca-fingerprint-sha256 against `openssl x509 -noout -fingerprint -sha256 -in ca.pem` on a backend, "+
		"and that the backend's certificate chain carries its CA after the leaf",
		e.Backend, e.Expected, strings.Join(e.Seen, ", "))
}

// backendAddress is the host and host:port sensu-agent dials for a
// backend-url entry.
func backendAddress(raw string) (host, addr string, err error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "", "", fmt.Errorf("backend-url %q is not a URL such as ws://backend-1:8081", raw)
	}
	port := u.Port()
	if port == "" {
		port = defaultAgentPort
	}
	return u.Hostname(), net.JoinHostPort(u.Hostname(), port), nil
}

// roots loads the CA bundle the backends must verify against, and the
// pinned CA to write to CAFile when the file is not there yet (nil when
// the file is used as it is).
func (t Trust) roots() (*x509.CertPool, error) {
	certs, err := pki.ReadCertificates(t.CAFile)
	if err != nil {
		return nil, err
	}
	if t.Pin != nil && !containsPin(certs, *t.Pin) {
		var seen []string
		for _, c := range certs {
			seen = append(seen, describe(c))
		}
		return nil, fmt.Errorf("%s holds no CA with the pinned fingerprint %s (it holds %s): remove the file so the pinned CA is fetched again, or correct agent-cutover.ca-fingerprint-sha256",
			t.CAFile, *t.Pin, strings.Join(seen, ", "))
	}
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool, nil
}

func containsPin(certs []*x509.Certificate, pin pki.Fingerprint) bool {
	for _, c := range certs {
		if pki.FingerprintOf(c) == pin {
			return true
		}
	}
	return false
}

func describe(c *x509.Certificate) string {
	return fmt.Sprintf("%s (%s)", pki.FingerprintOf(c), c.Subject.CommonName)
}

// handshake dials addr with TLS >= 1.2 and returns the chain presented;
// verification is the caller's, against the CA it chose.
func handshake(ctx context.Context, addr, host string) ([]*x509.Certificate, error) {
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         host,
		InsecureSkipVerify: true, // verified below, against the agent's CA, not the system roots
	}}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	chain := conn.(*tls.Conn).ConnectionState().PeerCertificates
	if len(chain) == 0 {
		return nil, errors.New("no certificate presented")
	}
	return chain, nil
}

// verify checks the leaf of chain for host against roots.
func verify(chain []*x509.Certificate, host string, roots *x509.CertPool) error {
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	_, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, DNSName: host})
	return err
}

// ProbeAll probes every backend-url entry: one error each, nil when its
// TLS verified against the CA for the URL's host. When the CA file is missing
// and a pin is set, the first backend whose chain carries the pinned CA
// (and verifies to it) supplies it; ca is then that CA's PEM, to be
// written to CAFile, and nil otherwise.
func (t Trust) ProbeAll(ctx context.Context, urls []string) (probes []error, ca []byte, err error) {
	var roots *x509.CertPool
	_, statErr := os.Stat(t.CAFile)
	switch {
	case statErr == nil:
		if roots, err = t.roots(); err != nil {
			return nil, nil, err
		}
	case !errors.Is(statErr, os.ErrNotExist):
		return nil, nil, fmt.Errorf("agent-cutover.ca-file %s: %w", t.CAFile, statErr)
	case t.Pin == nil:
		return nil, nil, fmt.Errorf("agent-cutover.ca-file %s does not exist: have configuration management place the CA bundle there, or set agent-cutover.ca-fingerprint-sha256 to take it from the backends", t.CAFile)
	}
	for _, u := range urls {
		host, addr, perr := backendAddress(u)
		var chain []*x509.Certificate
		if perr == nil {
			chain, perr = handshake(ctx, addr, host)
		}
		if perr == nil && roots == nil {
			var pinned *x509.Certificate
			if pinned, perr = t.pinned(addr, chain); perr == nil {
				roots = x509.NewCertPool()
				roots.AddCert(pinned)
				ca = pki.EncodeCertificatesPEM(pinned)
			}
		}
		if perr == nil {
			perr = verify(chain, host, roots)
		}
		if perr != nil {
			perr = fmt.Errorf("%s: %w", u, perr)
		}
		probes = append(probes, perr)
	}
	return probes, ca, nil
}

// pinned is the certificate of chain with the pinned fingerprint, or a
// *PinError naming every fingerprint seen.
func (t Trust) pinned(addr string, chain []*x509.Certificate) (*x509.Certificate, error) {
	e := &PinError{Backend: addr, Expected: *t.Pin}
	for _, c := range chain {
		if pki.FingerprintOf(c) == *t.Pin {
			if !c.IsCA {
				return nil, fmt.Errorf("the certificate with the pinned fingerprint %s (%s) is not a CA: pin the CA that signed the backend's certificate", *t.Pin, c.Subject.CommonName)
			}
			return c, nil
		}
		e.Seen = append(e.Seen, describe(c))
	}
	return nil, e
}
