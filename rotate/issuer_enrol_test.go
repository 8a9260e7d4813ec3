package rotate

import (
	"bytes"
	"context"
	"crypto/x509"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/config"
	"github.com/sensu-tlsd/sensu-tlsd/internal/enrol"
	"github.com/sensu-tlsd/sensu-tlsd/internal/pki"
	"github.com/sensu-tlsd/sensu-tlsd/rotate/ca"
	"github.com/sensu-tlsd/sensu-tlsd/rotate/install"
)

// enrolBackend is an enrol-server (the real handler and TLS) signing with
// a test CA, in front of a stand-in Sensu /auth that knows one user.
type enrolBackend struct {
	url, caFile string
	store       *enrol.FileStore
	mu          sync.Mutex
	authCalls   int
	bodies      [][]byte // every request body the enrol-server received
	paths       []string
}

func newEnrolBackend(t *testing.T, autosign ...string) *enrolBackend {
	t.Helper()
	dir := t.TempDir()
	authority, err := ca.Init(filepath.Join(dir, "ca"), ca.InitOptions{CommonName: "test CA", Lifetime: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	is, err := authority.Issue(ca.Request{Name: "backend-1", Profile: pki.Backend, Hosts: []string{"127.0.0.1"}, Lifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "backend.pem"), filepath.Join(dir, "backend-key.pem")
	os.WriteFile(certFile, is.CertPEM, 0o644)
	os.WriteFile(keyFile, is.KeyPEM, 0o600)
	b := &enrolBackend{caFile: filepath.Join(dir, "ca", ca.CertFileName)}
	auth := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.mu.Lock()
		b.authCalls++
		b.mu.Unlock()
		if user, pass, ok := r.BasicAuth(); r.URL.Path != "/auth" || !ok || user != "agent" || pass != "P@ssw0rd!" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		io.WriteString(w, `{"access_token":"x","refresh_token":"y"}`)
	}))
	t.Cleanup(auth.Close)
	if b.store, err = enrol.NewFileStore(filepath.Join(dir, "enrol")); err != nil {
		t.Fatal(err)
	}
	srv := &enrol.Server{Store: b.store, Policy: enrol.Policy{Autosign: autosign}, Auth: enrol.NewSensuAuth(auth.URL, nil),
		CADir: authority.Dir, Lifetime: time.Hour, Log: slog.New(slog.DiscardHandler), Now: time.Now}
	h := srv.Handler()
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		b.mu.Lock()
		b.bodies, b.paths = append(b.bodies, body), append(b.paths, r.URL.Path)
		b.mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(body))
		h.ServeHTTP(w, r)
	}))
	ts.TLS = enrol.ServerTLS(certFile, keyFile, b.caFile)
	ts.StartTLS()
	t.Cleanup(ts.Close)
	b.url = ts.URL
	return b
}

func (b *enrolBackend) calls() (auth int, lastPath string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.authCalls, b.paths[len(b.paths)-1]
}

// enrolPlan is an agent node's plan for certificate agent, whose
// agent.yml gives name and password.
func enrolPlan(t *testing.T, b *enrolBackend, name, password string) Plan {
	t.Helper()
	dir := t.TempDir()
	agentYML := filepath.Join(dir, "agent.yml")
	os.WriteFile(agentYML, []byte("name: "+name+"\nnamespace: prod\nuser: agent\npassword: "+password+"\n"), 0o600)
	p := Plan{Name: "agent", Profile: pki.Agent, KeyType: "ecdsa-p256", Dir: filepath.Join(dir, "state"),
		Paths:  install.Paths{Cert: filepath.Join(dir, "agent.pem"), Key: filepath.Join(dir, "agent-key.pem"), CA: filepath.Join(dir, "ca.pem")},
		Issuer: config.Issuer{Type: config.IssuerEnrol, Enrol: config.EnrolIssuer{URLs: []string{b.url}, CAFile: b.caFile}},
		Sensu:  config.Sensu{AgentConfig: agentYML, AgentEnvFiles: []string{}}}
	var err error
	if p.issuer, err = newIssuer(p); err != nil {
		t.Fatal(err)
	}
	return p
}

func enrolIssue(t *testing.T, p Plan) (install.Set, error) {
	t.Helper()
	return p.issuer.Issue(context.Background(), p, t.TempDir(), slog.New(slog.DiscardHandler))
}

// enrolInstall stands in for the manager's install of set.
func enrolInstall(t *testing.T, p Plan, set install.Set) *x509.Certificate {
	t.Helper()
	os.WriteFile(p.Paths.Cert, set.Cert, 0o644)
	os.WriteFile(p.Paths.Key, set.Key, 0o600)
	certs, err := pki.ParseCertificatesPEM(set.Cert)
	if err != nil {
		t.Fatal(err)
	}
	return certs[0]
}

func TestEnrolIssuerAutosignThenRenewsWithItsCertificate(t *testing.T) {
	b := newEnrolBackend(t, "web-*")
	p := enrolPlan(t, b, "web-1", "P@ssw0rd!")
	set, err := enrolIssue(t, p)
	if err != nil {
		t.Fatal(err)
	}
	leaf := enrolInstall(t, p, set)
	if leaf.Subject.CommonName != "web-1" || len(leaf.URIs) != 1 || leaf.URIs[0].String() != "sensu://prod/web-1" {
		t.Fatalf("certificate CN %q URIs %v, want web-1 and sensu://prod/web-1", leaf.Subject.CommonName, leaf.URIs)
	}
	if auth, path := b.calls(); auth != 1 || path != "/v1/enrol" {
		t.Fatalf("first enrolment: %d /auth calls, last path %s", auth, path)
	}
	// The key was made here and only its CSR went out.
	keyBody := strings.Join(strings.Split(string(set.Key), "\n")[1:3], "")
	for _, body := range b.bodies {
		if bytes.Contains(body, []byte("PRIVATE KEY")) || bytes.Contains(bytes.ReplaceAll(body, []byte(`\n`), nil), []byte(keyBody)) {
			t.Fatalf("a request carried the private key: %s", body)
		}
	}

	// Renewal presents the installed certificate: no credentials, a new key.
	renewed, err := enrolIssue(t, p)
	if err != nil {
		t.Fatal(err)
	}
	if auth, path := b.calls(); auth != 1 || path != "/v1/renew" {
		t.Fatalf("renewal: %d /auth calls (want still 1), last path %s (want /v1/renew)", auth, path)
	}
	if bytes.Equal(renewed.Key, set.Key) {
		t.Error("the renewal reused the key")
	}
	enrolInstall(t, p, renewed)

	// Another node claiming web-1 with its own key waits for approval.
	other := enrolPlan(t, b, "web-1", "P@ssw0rd!")
	if _, err := enrolIssue(t, other); err == nil || !strings.Contains(err.Error(), "waiting for approval: web-1 is pending (web-1 is bound to key") {
		t.Fatalf("a second key for web-1: %v", err)
	}
}

func TestEnrolIssuerWaitsForApprovalWithOneKey(t *testing.T) {
	b := newEnrolBackend(t, "web-*")
	p := enrolPlan(t, b, "db-1", "P@ssw0rd!")
	for range 2 {
		_, err := enrolIssue(t, p)
		if err == nil || !strings.Contains(err.Error(), "run `sensu-tlsd agents approve db-1` on a backend") {
			t.Fatalf("db-1 before approval: %v", err)
		}
	}
	keyFile := filepath.Join(p.Dir, enrolKeyFile)
	if fi, err := os.Stat(keyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the waiting request's key %s: %v %v, want 0600", keyFile, fi, err)
	}
	if _, err := enrol.SetApproval(context.Background(), b.store, "db-1", true, time.Now()); err != nil {
		t.Fatal(err)
	}
	set, err := enrolIssue(t, p)
	if err != nil {
		t.Fatalf("db-1 after approval: %v", err)
	}
	kept, _ := os.ReadFile(keyFile)
	if !bytes.Equal(set.Key, kept) {
		t.Error("the approved certificate is not for the key that asked")
	}
}

func TestEnrolIssuerWrongCredentials(t *testing.T) {
	b := newEnrolBackend(t, "*")
	p := enrolPlan(t, b, "web-1", "wrong")
	_, err := enrolIssue(t, p)
	if err == nil || !strings.Contains(err.Error(), `refused the password of user "agent": check user and password in agent.yml`) {
		t.Fatalf("wrong password: %v", err)
	}
	if recs, _ := b.store.List(context.Background()); len(recs) != 0 {
		t.Errorf("a refused request left records: %+v", recs)
	}
}
