package enrol

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/config"
	"github.com/sensu-tlsd/sensu-tlsd/internal/pki"
	"github.com/sensu-tlsd/sensu-tlsd/internal/testpeer"
	"github.com/sensu-tlsd/sensu-tlsd/rotate/ca"
)

// serviceEnv is what an enrol-server configuration points at: a CA, the
// backend certificate, a Sensu API accepting every password.
type serviceEnv struct {
	dir, certFile, keyFile, apiURL, apiCA string
	authority                             *ca.CA
	pool                                  *x509.CertPool
}

func newServiceEnv(t *testing.T) *serviceEnv {
	t.Helper()
	e := &serviceEnv{dir: t.TempDir()}
	var err error
	e.authority, err = ca.Init(filepath.Join(e.dir, "ca"), ca.InitOptions{CommonName: "test CA", Lifetime: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	is, err := e.authority.Issue(ca.Request{Name: "backend", Profile: pki.Backend, Hosts: []string{"127.0.0.1"}, Lifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	e.certFile, e.keyFile = filepath.Join(e.dir, "b.pem"), filepath.Join(e.dir, "b-key.pem")
	os.WriteFile(e.certFile, is.CertPEM, 0o644)
	os.WriteFile(e.keyFile, is.KeyPEM, 0o600)
	api := httptest.NewTLSServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	t.Cleanup(api.Close)
	e.apiURL, e.apiCA = api.URL, filepath.Join(e.dir, "api-ca.pem")
	os.WriteFile(e.apiCA, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: api.Certificate().Raw}), 0o644)
	e.pool = x509.NewCertPool()
	e.pool.AddCert(e.authority.Cert)
	return e
}

func (e *serviceEnv) config(listen string, autosign ...string) *config.Config {
	return &config.Config{
		StateDir:     e.dir,
		CA:           config.CA{Dir: e.authority.Dir},
		Certificates: []config.Certificate{{Name: "backend-1", CertFile: e.certFile, KeyFile: e.keyFile}},
		EnrolServer: config.EnrolServer{Listen: listen, Certificate: "backend-1", SensuAPIURL: e.apiURL, SensuAPICAFile: e.apiCA,
			Autosign: autosign, Store: "file", Lifetime: time.Hour},
	}
}

// enrol asks the enrol-server at addr to sign name; the status, or the
// dial error.
func (e *serviceEnv) enrol(t *testing.T, addr, name string) (string, error) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: e.pool}}}
	req, _ := http.NewRequest(http.MethodPost, "https://"+addr+"/v1/enrol", bytes.NewReader(requestBody(t, name, "default")))
	req.SetBasicAuth("agent", "P@ssw0rd!")
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var r Response
	json.NewDecoder(resp.Body).Decode(&r)
	return r.Status, nil
}

func commit(t *testing.T, s *Service, cfg *config.Config) error {
	t.Helper()
	p, err := s.Prepare(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p.Commit(context.Background())
}

// A reload puts new autosign patterns in effect for the next request and
// moves the server to a new address; a reload that cannot bind, or does
// not prepare, leaves the running server as it was.
func TestServiceFollowsReloads(t *testing.T) {
	e := newServiceEnv(t)
	s := NewService(slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error)
	go func() { ran <- s.Run(ctx) }()

	a, b := fmt.Sprintf("127.0.0.1:%d", testpeer.FreePort(t)), fmt.Sprintf("127.0.0.1:%d", testpeer.FreePort(t))
	if err := commit(t, s, e.config(a, "web-*")); err != nil {
		t.Fatal(err)
	}
	if st, err := e.enrol(t, a, "web-1"); st != StatusSigned {
		t.Fatalf("web-1 under autosign web-*: %q %v", st, err)
	}
	if st, err := e.enrol(t, a, "db-1"); st != StatusPending {
		t.Fatalf("db-1 under autosign web-*: %q %v", st, err)
	}

	p, err := s.Prepare(e.config(b, "db-*"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.enrol(t, b, "db-2"); err == nil {
		t.Fatal("Prepare bound the new address")
	}
	if err := p.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st, err := e.enrol(t, b, "db-2"); st != StatusSigned {
		t.Fatalf("db-2 under autosign db-* on the new address: %q %v", st, err)
	}
	waitRefused(t, a)

	if _, err := s.Prepare(&config.Config{EnrolServer: config.EnrolServer{Listen: a, Certificate: "missing"}}); err == nil || !strings.Contains(err.Error(), `"missing" is not in certificates`) {
		t.Fatalf("a configuration naming no managed certificate: %v", err)
	}
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	if err := commit(t, s, e.config(taken.Addr().String(), "*")); err == nil || !strings.Contains(err.Error(), "enrol-server.listen "+taken.Addr().String()) {
		t.Fatalf("a reload onto a taken port: %v", err)
	}
	if st, err := e.enrol(t, b, "other-1"); st != StatusPending {
		t.Fatalf("after a failed reload, autosign db-* on %s should still decide: %q %v", b, st, err)
	}

	if err := commit(t, s, e.config("")); err != nil {
		t.Fatal(err)
	}
	waitRefused(t, b)
	cancel()
	if err := <-ran; err != nil {
		t.Fatal(err)
	}
}

// waitRefused waits for addr to stop accepting connections.
func waitRefused(t *testing.T, addr string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			return
		}
		conn.Close()
		if time.Now().After(deadline) {
			t.Fatalf("%s still accepts connections", addr)
		}
	}
}
