package proxy

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/internal/pki"
)

// CAPool is a CA bundle a listener verifies peers with (clients through
// client-ca, targets through the originate CA), read again when the file
// changes, so a CA rollover reaches verification without a restart. A
// bundle that fails to load or to pass pki.CheckBundle never replaces the
// one in use.
type CAPool struct {
	path string
	mu   sync.Mutex        // serialises reloads
	sum  [sha256.Size]byte // of the file pool was read from
	pool atomic.Pointer[x509.CertPool]
}

// LoadCAPool reads the PEM bundle at path.
func LoadCAPool(path string) (*CAPool, error) {
	p := &CAPool{path: path}
	if err := p.Reload(); err != nil {
		return nil, err
	}
	return p, nil
}

// Path is the bundle's file.
func (p *CAPool) Path() string { return p.path }

// Pool is the bundle in use.
func (p *CAPool) Pool() *x509.CertPool { return p.pool.Load() }

// Reload reads the file again.
func (p *CAPool) Reload() error {
	_, err := p.reload()
	return err
}

// reload reads the file and reports whether its bytes changed; an
// unchanged file keeps the pool in use.
func (p *CAPool) reload() (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	b, err := pki.ReadFileLimited(p.path, pki.MaxPEMFileBytes, "a PEM CA bundle")
	if err != nil {
		return false, readError("CA bundle", err, "the PEM file of the CA that signs the peers' certificates")
	}
	sum := sha256.Sum256(b)
	if p.pool.Load() != nil && sum == p.sum {
		return false, nil
	}
	cas, err := pki.ParseCertificatesPEM(b)
	if err != nil {
		return false, fmt.Errorf("CA bundle %s: %w", p.path, err)
	}
	if err := pki.CheckBundle(cas, p.path, time.Now()); err != nil {
		return false, err
	}
	pool := x509.NewCertPool()
	for _, c := range cas {
		pool.AddCert(c)
	}
	p.sum = sum
	p.pool.Store(pool)
	return true, nil
}

// Watch reloads the bundle whenever its file changes, until ctx ends (for
// the standalone proxy; the daemon reloads on Changes).
func (p *CAPool) Watch(ctx context.Context, log *slog.Logger) error {
	return watchFiles(ctx, []string{p.path}, func() {
		changed, err := p.reload()
		switch {
		case err != nil:
			log.Warn("CA bundle changed but did not load; still verifying with the previous one", "ca", p.path, "err", err)
		case changed:
			log.Info("CA bundle reloaded", "ca", p.path)
		}
	}, log)
}

// followClientCAs makes cfg verify clients with the pool's current bundle:
// each handshake after a reload gets a config derived from cfg with the
// new pool (built once per reload), and session tickets keep working
// because crypto/tls takes their keys from the original config.
func followClientCAs(cfg *tls.Config, cas *CAPool) {
	base := cfg.Clone()
	first := cas.Pool()
	cfg.ClientCAs = first
	var derived perPool[*tls.Config]
	cfg.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		pool := cas.Pool()
		if pool == first {
			return nil, nil
		}
		c, ok := derived.load(pool)
		if !ok {
			c = base.Clone()
			c.ClientCAs = pool
			derived.store(pool, c)
		}
		return c, nil
	}
}

// perPool keeps what was derived from the CA bundle in use (TLS configs
// that verify with it), so it is built once per reload, not once per
// handshake or connection.
type perPool[T any] struct {
	last atomic.Pointer[pooled[T]]
}

type pooled[T any] struct {
	pool *x509.CertPool
	v    T
}

// load is what was stored for pool, if it is the pool stored last.
func (p *perPool[T]) load(pool *x509.CertPool) (T, bool) {
	if d := p.last.Load(); d != nil && d.pool == pool {
		return d.v, true
	}
	var zero T
	return zero, false
}

// store keeps v, derived from pool.
func (p *perPool[T]) store(pool *x509.CertPool, v T) {
	p.last.Store(&pooled[T]{pool, v})
}
