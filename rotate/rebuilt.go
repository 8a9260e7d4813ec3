package rotate

import (
	"context"
	"sync"

	"github.com/sensu-tlsd/sensu-tlsd/config"
)

// BuildFunc makes a Subscriber from a configuration, with the function
// that releases what it holds (a D-Bus connection).
type BuildFunc func(cfg *config.Config) (Subscriber, func(), error)

// Rebuilt is a Subscriber made from the configuration and made again on
// every reload, so consumers whose behaviour the config describes (the
// service actions, the Sensu config writer) follow a SIGHUP like the
// certificates do. It is a reloader for the daemon: Check builds and
// discards, Apply builds and swaps.
type Rebuilt struct {
	build BuildFunc

	// mu is held for reading while a change is delivered, so a swap waits
	// for an action in flight instead of closing its connection under it.
	mu      sync.RWMutex
	current Subscriber
	release func()
}

// NewRebuilt builds the first Subscriber from cfg.
func NewRebuilt(cfg *config.Config, build BuildFunc) (*Rebuilt, error) {
	sub, release, err := build(cfg)
	if err != nil {
		return nil, err
	}
	return &Rebuilt{build: build, current: sub, release: release}, nil
}

// CertificateChanged delivers c to the current Subscriber.
func (r *Rebuilt) CertificateChanged(ctx context.Context, c Change) error {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.current.CertificateChanged(ctx, c)
}

// Check reports whether cfg builds.
func (r *Rebuilt) Check(cfg *config.Config) error {
	_, release, err := r.build(cfg)
	if err == nil {
		release()
	}
	return err
}

// Apply replaces the current Subscriber with one built from cfg, after
// any change in flight has been delivered.
func (r *Rebuilt) Apply(_ context.Context, cfg *config.Config) error {
	sub, release, err := r.build(cfg)
	if err != nil {
		return err
	}
	r.mu.Lock()
	old := r.release
	r.current, r.release = sub, release
	r.mu.Unlock()
	old()
	return nil
}

// Close releases the current Subscriber.
func (r *Rebuilt) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.release()
}
