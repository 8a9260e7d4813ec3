package proxy

import (
	"context"
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"testing"

	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sensu-tlsd/sensu-tlsd/internal/testca"
)

// writePair writes cert and key PEM into dir and returns the paths.
func writePair(t testing.TB, dir string, certPEM, keyPEM []byte) (string, string) {
	t.Helper()
	cf, kf := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(cf, certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kf, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return cf, kf
}

// staticSource serves one fixed pair.
type staticSource struct{ c *tls.Certificate }

func (s staticSource) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) { return s.c, nil }
func (s staticSource) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return s.c, nil
}

// echoServer accepts plaintext TCP and echoes every byte back, closing its
// write side when the client closes its write side.
func echoServer(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 32<<10)
				for {
					n, err := c.Read(buf)
					if n > 0 {
						c.Write(buf[:n])
					}
					if err != nil {
						c.(*net.TCPConn).CloseWrite()
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// startServer runs s on a loopback port and shuts it down at cleanup.
func startServer(t testing.TB, opt Options) (*Server, string) {
	t.Helper()
	s, err := New(opt)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := contextWithTimeout(2 * time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	return s, ln.Addr().String()
}

// localhostPEM issues a localhost server pair; rsaKey picks RSA-2048.
func localhostPEM(t testing.TB, ca *testca.CA, rsaKey bool) (certPEM, keyPEM []byte) {
	t.Helper()
	leaf := testca.Leaf{CN: "localhost", Hosts: []string{"localhost", "127.0.0.1"}}
	if rsaKey {
		leaf.RSABits = 2048
	}
	i := ca.Issue(t, leaf)
	return i.CertPEM, i.KeyPEM
}

// writePairPEM issues a localhost server pair into dir.
func writePairPEM(t testing.TB, dir string, ca *testca.CA, rsaKey bool) (string, string) {
	c, k := localhostPEM(t, ca, rsaKey)
	return writePair(t, dir, c, k)
}

// tlsDialPlain opens a plaintext client connection (originate's inbound).
func tlsDialPlain(addr string) (net.Conn, error) { return net.Dial("tcp", addr) }

func writeFile(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// listenerAddr is the address listener i of ls accepts on.
func listenerAddr(ls *Listeners, i int) net.Addr {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return ls.running[i].ln.Addr()
}

// newTestListeners is an empty set of daemon listeners, shut down when
// the test ends.
func newTestListeners(t testing.TB) *Listeners {
	t.Helper()
	ls, err := NewListeners(prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ls.Shutdown(context.Background()) })
	return ls
}
