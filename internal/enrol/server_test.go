package enrol

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/internal/pki"
	"github.com/sensu-tlsd/sensu-tlsd/rotate/ca"
)

// testServer is an enrol-server over TLS with a test CA; the Sensu API
// behind it refuses every credential, so only renewals can succeed.
type testServer struct {
	url   string
	ca    *ca.CA
	pool  *x509.CertPool
	store *FileStore
	srv   *Server
}

func newTestServer(t *testing.T) *testServer {
	t.Helper()
	dir := t.TempDir()
	authority, err := ca.Init(filepath.Join(dir, "ca"), ca.InitOptions{CommonName: "test CA", Lifetime: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	is, err := authority.Issue(ca.Request{Name: "backend", Profile: pki.Backend, Hosts: []string{"127.0.0.1"}, Lifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "b.pem"), filepath.Join(dir, "b-key.pem")
	os.WriteFile(certFile, is.CertPEM, 0o644)
	os.WriteFile(keyFile, is.KeyPEM, 0o600)
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusUnauthorized) }))
	t.Cleanup(api.Close)
	store, _ := NewFileStore(filepath.Join(dir, "enrol"))
	s := &Server{Store: store, Auth: NewSensuAuth(api.URL, nil), CADir: authority.Dir, Lifetime: time.Hour,
		Log: slog.New(slog.DiscardHandler), Now: time.Now}
	ts := httptest.NewUnstartedServer(s.Handler())
	ts.TLS = ServerTLS(certFile, keyFile, filepath.Join(authority.Dir, ca.CertFileName))
	ts.StartTLS()
	t.Cleanup(ts.Close)
	pool := x509.NewCertPool()
	pool.AddCert(authority.Cert)
	return &testServer{url: ts.URL, ca: authority, pool: pool, store: store, srv: s}
}

// agentCert is a client certificate from the test CA for cn with uris.
func (s *testServer) agentCert(t *testing.T, cn string, uris ...*url.URL) *tls.Certificate {
	t.Helper()
	is, err := s.ca.Issue(ca.Request{Name: cn, Profile: pki.Agent, Lifetime: time.Hour, URIs: uris})
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(is.CertPEM, is.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return &pair
}

func (s *testServer) post(t *testing.T, path string, cert *tls.Certificate, body []byte) (int, Response) {
	t.Helper()
	tc := &tls.Config{RootCAs: s.pool}
	if cert != nil {
		tc.Certificates = []tls.Certificate{*cert}
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: tc}}
	resp, err := c.Post(s.url+path, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r Response
	json.NewDecoder(resp.Body).Decode(&r)
	return resp.StatusCode, r
}

func requestBody(t *testing.T, name, ns string) []byte {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	b, _ := json.Marshal(Request{Name: name, Namespace: ns, CSR: csrPEM(t, name, key)})
	return b
}

func TestServerRenewNeedsTheAgentsOwnCertificate(t *testing.T) {
	s := newTestServer(t)
	for _, c := range []struct {
		name string
		cert *tls.Certificate
		want string
	}{
		{"no certificate", nil, "renewing web-1 needs its current certificate"},
		{"another agent's", s.agentCert(t, "web-2"), `the client certificate is for "web-2", not "web-1"`},
		{"another namespace", s.agentCert(t, "web-1", AgentURI("dev", "web-1")), "the client certificate is for sensu://dev/web-1, not sensu://prod/web-1"},
	} {
		code, r := s.post(t, "/v1/renew", c.cert, requestBody(t, "web-1", "prod"))
		if code != http.StatusUnauthorized || !strings.Contains(r.Message, c.want) {
			t.Errorf("%s: %d %q, want 401 %q", c.name, code, r.Message, c.want)
		}
	}
	code, r := s.post(t, "/v1/renew", s.agentCert(t, "web-1", AgentURI("prod", "web-1")), requestBody(t, "web-1", "prod"))
	if code != http.StatusOK || r.Status != StatusSigned {
		t.Fatalf("renew with web-1's own certificate: %d %+v", code, r)
	}
	// A denied name is refused even with its certificate.
	if _, err := SetApproval(context.Background(), s.store, "web-1", false, time.Now()); err != nil {
		t.Fatal(err)
	}
	code, r = s.post(t, "/v1/renew", s.agentCert(t, "web-1"), requestBody(t, "web-1", "prod"))
	if code != http.StatusForbidden || r.Status != StatusDenied || !strings.Contains(r.Message, "web-1 is denied") {
		t.Fatalf("renew of a denied name: %d %+v", code, r)
	}
}

func TestServerRefusesBadRequests(t *testing.T) {
	s := newTestServer(t)
	code, r := s.post(t, "/v1/enrol", nil, requestBody(t, "web-1", "prod"))
	if code != http.StatusUnauthorized || !strings.Contains(r.Message, "needs the agent's Sensu credentials") {
		t.Errorf("enrol without credentials: %d %q", code, r.Message)
	}
	code, _ = s.post(t, "/v1/enrol", nil, bytes.Repeat([]byte("x"), MaxRequestBytes+1))
	if code != http.StatusRequestEntityTooLarge {
		t.Errorf("an oversized body: %d, want 413", code)
	}
	code, r = s.post(t, "/v1/enrol", nil, []byte(`{"name":"web-1"}`))
	if code != http.StatusBadRequest || !strings.Contains(r.Message, "namespace") {
		t.Errorf("a request without namespace: %d %q", code, r.Message)
	}
	if recs, _ := s.store.List(context.Background()); len(recs) != 0 {
		t.Errorf("refused requests left records: %+v", recs)
	}
}
