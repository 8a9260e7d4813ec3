package systemd

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

// Expect is what a health check must see after an action.
type Expect struct {
	// Serials are the leaf serials the service may present (hex, any case,
	// colons allowed); empty means any certificate will do.
	Serials []string
	// CAFile verifies the presented chain when set (host names are not
	// checked: probes dial addresses, not names).
	CAFile string
}

// Check is one probe of a service's health. Implementations side by side:
// HTTPCheck, TLSCheck, TCPCheck.
type Check interface {
	Probe(ctx context.Context, e Expect) error
	String() string
}

// HTTPCheck wants GET URL to answer 200. For https URLs the presented
// certificate must also meet Expect.
type HTTPCheck struct{ URL string }

func (c HTTPCheck) String() string { return "GET " + c.URL }

// Probe makes one request.
func (c HTTPCheck) Probe(ctx context.Context, e Expect) error {
	tlsConf, err := e.tlsConfig()
	if err != nil {
		return err
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConf, DisableKeepAlives: true}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.URL, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", c, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", c, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: status %d: %s", c, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return nil
}

// TLSCheck wants a TLS handshake to Address to present an expected serial.
type TLSCheck struct{ Address string }

func (c TLSCheck) String() string { return "TLS " + c.Address }

// Probe makes one handshake.
func (c TLSCheck) Probe(ctx context.Context, e Expect) error {
	tlsConf, err := e.tlsConfig()
	if err != nil {
		return err
	}
	d := tls.Dialer{Config: tlsConf}
	conn, err := d.DialContext(ctx, "tcp", c.Address)
	if err != nil {
		return fmt.Errorf("%s: %w", c, err)
	}
	return conn.Close()
}

// TCPCheck wants Address to accept a connection.
type TCPCheck struct{ Address string }

func (c TCPCheck) String() string { return "TCP " + c.Address }

// Probe connects once.
func (c TCPCheck) Probe(ctx context.Context, _ Expect) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", c.Address)
	if err != nil {
		return fmt.Errorf("%s: %w", c, err)
	}
	return conn.Close()
}

// tlsConfig checks the presented leaf against e instead of against a host
// name: the point is "does it serve the newly installed certificate".
func (e Expect) tlsConfig() (*tls.Config, error) {
	var roots *x509.CertPool
	if e.CAFile != "" {
		pem, err := os.ReadFile(e.CAFile)
		if err != nil {
			return nil, fmt.Errorf("health check CA: %w", err)
		}
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("health check CA %s holds no PEM certificate", e.CAFile)
		}
	}
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, // replaced by VerifyConnection below
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("no certificate presented")
			}
			leaf := cs.PeerCertificates[0]
			if roots != nil {
				inter := x509.NewCertPool()
				for _, c := range cs.PeerCertificates[1:] {
					inter.AddCert(c)
				}
				if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter}); err != nil {
					return fmt.Errorf("presented certificate does not verify against %s: %w", e.CAFile, err)
				}
			}
			if len(e.Serials) == 0 {
				return nil
			}
			for _, s := range e.Serials {
				if SameSerial(s, leaf.SerialNumber) {
					return nil
				}
			}
			return fmt.Errorf("presents serial %s, want %s (the service still serves another certificate)",
				strings.ToUpper(leaf.SerialNumber.Text(16)), strings.Join(e.Serials, " or "))
		},
	}, nil
}

// SameSerial compares a hex serial as written by tools (any case, colons,
// leading zeros) with a certificate's serial number.
func SameSerial(hexSerial string, n *big.Int) bool {
	v, ok := new(big.Int).SetString(strings.ReplaceAll(strings.TrimSpace(hexSerial), ":", ""), 16)
	return ok && v.Cmp(n) == 0
}

// Health polls its checks until all pass at once or Timeout ends.
type Health struct {
	Checks   []Check
	Timeout  time.Duration // 0: 30s
	Interval time.Duration // 0: 250ms
}

// Wait returns nil when every check passed in one round, or an error with
// each check's last failure.
func (h Health) Wait(ctx context.Context, e Expect) error {
	if len(h.Checks) == 0 {
		return nil
	}
	timeout, interval := h.Timeout, h.Interval
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	if interval <= 0 {
		interval = 250 * time.Millisecond
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		var errs []error
		for _, c := range h.Checks {
			pctx, pcancel := context.WithTimeout(ctx, min(5*time.Second, timeout))
			if err := c.Probe(pctx, e); err != nil {
				errs = append(errs, err)
			}
			pcancel()
		}
		if len(errs) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not healthy within %s: %w", timeout, errors.Join(errs...))
		case <-time.After(interval):
		}
	}
}
