package enrol

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/config"
	"github.com/sensu-tlsd/sensu-tlsd/config/sensu"
	"github.com/sensu-tlsd/sensu-tlsd/internal/cluster"
	"github.com/sensu-tlsd/sensu-tlsd/rotate/ca"
)

// OpenStore opens the store enrol-server.store names: the file in
// STATE-DIR/enrol, or the cluster's etcd as backend.yml reaches it.
func OpenStore(cfg *config.Config) (Store, error) {
	if cfg.EnrolServer.Store != "etcd" {
		return NewFileStore(filepath.Join(cfg.StateDir, "enrol"))
	}
	n, err := backendNode(cfg)
	if err != nil {
		return nil, err
	}
	c, err := cluster.Open(context.Background(), cluster.BackendOf(n, backendFile(cfg)).Config())
	if err != nil {
		return nil, fmt.Errorf("enrol-server.store etcd: %w", err)
	}
	return NewEtcdStore(c), nil
}

// NewServer builds the enrol-server cfg describes on store, with the TLS
// it serves: the managed certificate enrol-server.certificate, and the
// local CA verifying renewals' client certificates.
func NewServer(cfg *config.Config, store Store, log *slog.Logger) (*Server, *tls.Config, error) {
	es := cfg.EnrolServer
	cert, ok := cfg.Certificate(es.Certificate)
	if !ok {
		return nil, nil, fmt.Errorf("enrol-server.certificate: %q is not in certificates", es.Certificate)
	}
	apiURL := es.SensuAPIURL
	if apiURL == "" {
		n, err := backendNode(cfg)
		if err != nil {
			return nil, nil, fmt.Errorf("enrol-server.sensu-api-url is unset and backend.yml cannot say where the Sensu API is: %w", err)
		}
		apiURL = n.Str("api-url")
	}
	pem, err := os.ReadFile(es.SensuAPICAFile)
	if err != nil {
		return nil, nil, fmt.Errorf("enrol-server.sensu-api-ca-file: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, nil, fmt.Errorf("enrol-server.sensu-api-ca-file: %s holds no PEM certificate", es.SensuAPICAFile)
	}
	return &Server{
		Store:    store,
		Policy:   Policy{Autosign: es.Autosign},
		Auth:     NewSensuAuth(apiURL, roots),
		CADir:    cfg.CA.Dir,
		Lifetime: es.Lifetime,
		Log:      log.With("component", "enrol-server"),
		Now:      time.Now,
	}, ServerTLS(cert.CertFile, cert.KeyFile, filepath.Join(cfg.CA.Dir, ca.CertFileName)), nil
}

func backendNode(cfg *config.Config) (*sensu.Node, error) {
	return sensu.ReadNode(sensu.Backend, backendFile(cfg), sensu.EnvFilesOf(sensu.Backend, cfg.Sensu.BackendEnvFiles))
}

func backendFile(cfg *config.Config) string {
	if cfg.Sensu.BackendConfig != "" {
		return cfg.Sensu.BackendConfig
	}
	return sensu.DefaultBackendConfig
}
