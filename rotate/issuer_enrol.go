package rotate

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/config"
	"github.com/sensu-tlsd/sensu-tlsd/config/sensu"
	"github.com/sensu-tlsd/sensu-tlsd/internal/atomicfile"
	"github.com/sensu-tlsd/sensu-tlsd/internal/enrol"
	"github.com/sensu-tlsd/sensu-tlsd/internal/pki"
	"github.com/sensu-tlsd/sensu-tlsd/rotate/install"
)

// enrolIssuer asks the backends' enrol-server to sign a request for this
// agent node's name. The key is made here and only its CSR is sent. The
// first enrolment is authenticated with agent.yml's Sensu credentials;
// while the installed certificate is valid, renewals present it instead.
type enrolIssuer struct {
	cfg   config.EnrolIssuer
	sensu config.Sensu
}

// enrolKeyFile holds the key of the last request until a certificate for
// it is installed: a request waiting for approval is approved for its
// key, so the next attempt must ask with the same one.
const enrolKeyFile = "enrol-key.pem"

func newEnrolIssuer(p Plan) (Issuer, error) {
	if len(p.Issuer.Enrol.URLs) == 0 {
		return nil, errors.New("enrol.urls is empty: give the https URL of a backend's enrol-server")
	}
	if _, err := pki.ReadCertificates(p.Issuer.Enrol.CAFile); err != nil {
		return nil, fmt.Errorf("enrol.ca-file: %w", err)
	}
	return enrolIssuer{cfg: p.Issuer.Enrol, sensu: p.Sensu}, nil
}

func (e enrolIssuer) Issue(ctx context.Context, p Plan, _ string, log *slog.Logger) (install.Set, error) {
	id, err := e.agent()
	if err != nil {
		return install.Set{}, err
	}
	current, _ := tls.LoadX509KeyPair(p.Paths.Cert, p.Paths.Key)
	key, keyPEM, err := requestKey(p, current)
	if err != nil {
		return install.Set{}, err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: id.Name}}, key)
	if err != nil {
		return install.Set{}, fmt.Errorf("building the certificate request: %w", err)
	}
	body, err := json.Marshal(enrol.Request{Name: id.Name, Namespace: id.Namespace,
		CSR: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))})
	if err != nil {
		return install.Set{}, err
	}
	roots, err := pki.ReadCertificates(e.cfg.CAFile)
	if err != nil {
		return install.Set{}, fmt.Errorf("enrol.ca-file: %w", err)
	}
	pool := x509.NewCertPool()
	for _, c := range roots {
		pool.AddCert(c)
	}
	resp, err := e.renew(ctx, pool, current, id.Name, body, log)
	if resp == nil && err == nil {
		resp, err = e.post(ctx, pool, nil, "/v1/enrol", id, body)
	}
	if err != nil {
		return install.Set{}, err
	}
	chain, err := pki.ParseCertificatesPEM([]byte(resp.Certificate))
	if err != nil {
		return install.Set{}, fmt.Errorf("the enrol-server returned an unreadable certificate: %w", err)
	}
	if !pki.KeyMatches(chain[0], key) {
		return install.Set{}, errors.New("the enrol-server returned a certificate for another key than the one requested")
	}
	return install.Set{Cert: []byte(resp.Certificate), Key: keyPEM, CA: []byte(resp.CA)}, nil
}

// renew asks /v1/renew with the current certificate when it is still the
// agent's and unexpired. A nil answer and error means enrol instead.
func (e enrolIssuer) renew(ctx context.Context, pool *x509.CertPool, current tls.Certificate, name string, body []byte, log *slog.Logger) (*enrol.Response, error) {
	if len(current.Certificate) == 0 {
		return nil, nil
	}
	leaf, err := x509.ParseCertificate(current.Certificate[0])
	if err != nil || leaf.Subject.CommonName != name || time.Now().After(leaf.NotAfter) {
		return nil, nil
	}
	resp, err := e.post(ctx, pool, &current, "/v1/renew", sensu.AgentIdentity{}, body)
	if errors.Is(err, errCertRefused) {
		log.Warn("the enrol-server refused the current certificate for a renewal; enrolling with the Sensu credentials instead", "err", err)
		return nil, nil
	}
	return resp, err
}

// errCertRefused is a renewal whose client certificate was not accepted.
var errCertRefused = errors.New("the current certificate was not accepted")

// post sends body to path on each configured URL in turn until one
// answers; id's credentials go along when there is no client certificate.
func (e enrolIssuer) post(ctx context.Context, pool *x509.CertPool, clientCert *tls.Certificate, path string, id sensu.AgentIdentity, body []byte) (*enrol.Response, error) {
	t := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
	if clientCert != nil {
		t.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return clientCert, nil }
	}
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: t, Proxy: http.ProxyFromEnvironment}}
	defer client.CloseIdleConnections()
	var errs []error
	for _, base := range e.cfg.URLs {
		url := base + path
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			return nil, fmt.Errorf("enrol.urls %s: %w", base, err)
		}
		req.Header.Set("Content-Type", "application/json")
		if clientCert == nil {
			req.SetBasicAuth(id.User, id.Password)
		}
		resp, err := client.Do(req)
		if err != nil {
			errs = append(errs, err)
			continue // another backend may answer
		}
		var answer enrol.Response
		data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if err == nil {
			err = json.Unmarshal(data, &answer)
		}
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%s answered %s with no enrolment response: %v", url, resp.Status, err))
		case resp.StatusCode == http.StatusOK && answer.Status == enrol.StatusSigned:
			return &answer, nil
		case resp.StatusCode == http.StatusAccepted:
			return nil, fmt.Errorf("waiting for approval: %s", answer.Message)
		case resp.StatusCode == http.StatusUnauthorized && clientCert != nil:
			return nil, fmt.Errorf("%w: %s", errCertRefused, answer.Message)
		case resp.StatusCode >= 500:
			errs = append(errs, fmt.Errorf("%s: %s: %s", url, resp.Status, answer.Message))
		default:
			return nil, fmt.Errorf("%s refused the request (%s): %s", url, resp.Status, answer.Message)
		}
	}
	return nil, fmt.Errorf("no enrol-server answered: %w", errors.Join(errs...))
}

// agent reads the agent's identity from agent.yml and its environment files.
func (e enrolIssuer) agent() (sensu.AgentIdentity, error) {
	file := e.sensu.AgentConfig
	if file == "" {
		file = sensu.DefaultAgentConfig
	}
	n, err := sensu.ReadNode(sensu.Agent, file, sensu.EnvFilesOf(sensu.Agent, e.sensu.AgentEnvFiles))
	if err != nil {
		return sensu.AgentIdentity{}, fmt.Errorf("reading the agent's name and credentials (sensu.agent-config): %w", err)
	}
	return n.AgentIdentity()
}

// requestKey is the key to ask with: the last request's while no
// installed certificate carries it (it may wait for approval), else a
// new one, kept 0600 in the plan's state directory.
func requestKey(p Plan, current tls.Certificate) (crypto.Signer, []byte, error) {
	path := filepath.Join(p.Dir, enrolKeyFile)
	if keyPEM, err := os.ReadFile(path); err == nil {
		key, err := pki.ParsePrivateKeyPEM(keyPEM)
		if err == nil && !sameKey(key, current) {
			return key, keyPEM, nil
		}
	}
	key, err := pki.GenerateKey(p.KeyType)
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err := pki.EncodePrivateKeyPEM(key)
	if err != nil {
		return nil, nil, err
	}
	if err := os.MkdirAll(p.Dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("keeping the request key: %w", err)
	}
	if err := atomicfile.Write(path, keyPEM, atomicfile.Mode(0o600)); err != nil {
		return nil, nil, fmt.Errorf("keeping the request key: %w", err)
	}
	return key, keyPEM, nil
}

// sameKey reports whether key is the installed certificate's.
func sameKey(key crypto.Signer, current tls.Certificate) bool {
	if len(current.Certificate) == 0 {
		return false
	}
	leaf, err := x509.ParseCertificate(current.Certificate[0])
	return err == nil && pki.KeyMatches(leaf, key)
}
