package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"sync"
	"sync/atomic"
)

// CAPool is a CA bundle a listener verifies peers with (clients through
// client-ca, targets through the originate CA), read again when the file
// changes, so a CA rollover reaches verification without a restart. A
// bundle that fails to load never replaces the one in use.
type CAPool struct {
	path string
	mu   sync.Mutex // serialises reloads
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
	p.mu.Lock()
	defer p.mu.Unlock()
	pool, err := LoadCertPool(p.path)
	if err != nil {
		return err
	}
	p.pool.Store(pool)
	return nil
}

// Watch reloads the bundle whenever a file in its directory changes,
// until ctx ends (for the standalone proxy; the daemon reloads on Changes).
func (p *CAPool) Watch(ctx context.Context, log *slog.Logger) error {
	return watchDirs(ctx, []string{p.path}, func() {
		if err := p.Reload(); err != nil {
			log.Warn("CA bundle changed but did not load; still verifying with the previous one", "ca", p.path, "err", err)
			return
		}
		log.Info("CA bundle reloaded", "ca", p.path)
	}, log)
}

// followClientCAs makes cfg verify clients with the pool's current bundle:
// each handshake after a reload gets a config derived from cfg with the
// new pool (built once per reload), and session tickets keep working
// because crypto/tls takes their keys from the original config.
func followClientCAs(cfg *tls.Config, cas *CAPool) {
	type derived struct {
		pool *x509.CertPool
		cfg  *tls.Config
	}
	base := cfg.Clone()
	first := cas.Pool()
	cfg.ClientCAs = first
	var last atomic.Pointer[derived]
	cfg.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		pool := cas.Pool()
		if pool == first {
			return nil, nil
		}
		if d := last.Load(); d != nil && d.pool == pool {
			return d.cfg, nil
		}
		c := base.Clone()
		c.ClientCAs = pool
		last.Store(&derived{pool, c})
		return c, nil
	}
}
