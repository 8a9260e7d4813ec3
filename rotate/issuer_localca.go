package rotate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/internal/flock"
	"github.com/sensu-tlsd/sensu-tlsd/internal/pki"
	"github.com/sensu-tlsd/sensu-tlsd/rotate/ca"
	"github.com/sensu-tlsd/sensu-tlsd/rotate/install"
)

var caCreateMu sync.Mutex

// localCAIssuer signs with the CA on this node. The CA is loaded on every
// issue so a CA replaced on disk is picked up without a restart.
type localCAIssuer struct{}

func (localCAIssuer) Issue(_ context.Context, p Plan, _ string, log *slog.Logger) (install.Set, error) {
	authority, err := loadOrCreateCA(p, log)
	if err != nil {
		return install.Set{}, err
	}
	is, err := authority.Issue(ca.Request{
		Name:       p.Name,
		Profile:    p.Profile,
		CommonName: p.CommonName,
		Hosts:      p.Hosts,
		Namespace:  p.Namespace,
		KeyType:    p.KeyType,
		Lifetime:   p.Lifetime,
	})
	if err != nil {
		return install.Set{}, err
	}
	return install.Set{Cert: is.CertPEM, Key: is.KeyPEM, CA: is.CAPEM}, nil
}

// loadOrCreateCA loads the CA, creating it only when the config asks for
// that (ca.create): silently making a new CA because a path is wrong would
// give every peer certificates they do not trust. A creation is logged as
// a warning, since every peer must be given the new ca.pem.
func loadOrCreateCA(p Plan, log *slog.Logger) (*ca.CA, error) {
	// Certificates are issued concurrently; exactly one of them may create
	// the CA, within this process and across processes (flock).
	caCreateMu.Lock()
	defer caCreateMu.Unlock()
	if err := os.MkdirAll(p.CADir, 0o700); err != nil {
		return nil, fmt.Errorf("creating the CA directory: %w", err)
	}
	unlock, err := flock.Lock(context.Background(), filepath.Join(p.CADir, ".lock"), 0o600)
	if err != nil {
		return nil, err
	}
	defer unlock()
	_, err = os.Stat(filepath.Join(p.CADir, ca.CertFileName))
	if errors.Is(err, os.ErrNotExist) && p.CA.Create {
		authority, err := ca.Init(p.CADir, ca.InitOptions{CommonName: p.CA.CommonName, KeyType: p.CA.KeyType, Lifetime: p.CA.Lifetime})
		if err != nil {
			return nil, fmt.Errorf("creating the local CA in %s (ca.create is true): %w", p.CADir, err)
		}
		root := authority.Cert
		log.Warn("created a new local CA (ca.create is true): peers trust what it signs only once they have its ca.pem",
			"ca", filepath.Join(p.CADir, ca.CertFileName), "key", filepath.Join(p.CADir, ca.KeyFileName),
			"subject", root.Subject.CommonName, "serial", pki.SerialHex(root), "not_after", root.NotAfter.Format(time.RFC3339))
		return authority, nil
	}
	return ca.Load(p.CADir)
}
