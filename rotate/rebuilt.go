package rotate

import (
	"context"
	"sync"

	"github.com/sensu-tlsd/sensu-tlsd/config"
	"github.com/sensu-tlsd/sensu-tlsd/internal/event"
)

// BuildFunc makes a event.Subscriber from a configuration, with the function
// that releases what it holds (a D-event.Bus connection).
type BuildFunc func(cfg *config.Config) (event.Subscriber, func(), error)

// Rebuilt is a event.Subscriber made from the configuration and made again on
// every reload, so consumers whose behaviour the config describes (the
// service actions, the Sensu config writer) follow a SIGHUP like the
// certificates do. It is a reloader for the daemon: Check builds and keeps
// the result, Apply swaps it in (building once per reload, so what a build
// logs is logged once), Discard drops it when the reload is rejected.
type Rebuilt struct {
	build BuildFunc

	// mu is held for reading while a change is delivered, so a swap waits
	// for an action in flight instead of closing its connection under it.
	mu      sync.RWMutex
	current event.Subscriber
	release func()

	// pending is what Check built for cfg, waiting for Apply or Discard.
	pending struct {
		sync.Mutex
		cfg     *config.Config
		sub     event.Subscriber
		release func()
	}
}

// NewRebuilt builds the first event.Subscriber from cfg.
func NewRebuilt(cfg *config.Config, build BuildFunc) (*Rebuilt, error) {
	sub, release, err := build(cfg)
	if err != nil {
		return nil, err
	}
	return &Rebuilt{build: build, current: sub, release: release}, nil
}

// CertificateChanged delivers c to the current event.Subscriber.
func (r *Rebuilt) CertificateChanged(ctx context.Context, c event.Change) error {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.current.CertificateChanged(ctx, c)
}

// Check reports whether cfg builds, and keeps what it built for Apply.
func (r *Rebuilt) Check(cfg *config.Config) error {
	sub, release, err := r.build(cfg)
	if err != nil {
		return err
	}
	r.pending.Lock()
	defer r.pending.Unlock()
	r.dropPending()
	r.pending.cfg, r.pending.sub, r.pending.release = cfg, sub, release
	return nil
}

// Discard releases what Check built; the reload it was for is rejected.
func (r *Rebuilt) Discard() {
	r.pending.Lock()
	defer r.pending.Unlock()
	r.dropPending()
}

// dropPending releases a build no Apply took; pending is locked.
func (r *Rebuilt) dropPending() {
	if r.pending.release != nil {
		r.pending.release()
	}
	r.pending.cfg, r.pending.sub, r.pending.release = nil, nil, nil
}

// Apply replaces the current event.Subscriber with one built from cfg (the one
// Check built for it, if any), after any change in flight has been
// delivered.
func (r *Rebuilt) Apply(_ context.Context, cfg *config.Config) error {
	r.pending.Lock()
	sub, release := r.pending.sub, r.pending.release
	if r.pending.cfg != cfg {
		r.dropPending()
		var err error
		if sub, release, err = r.build(cfg); err != nil {
			r.pending.Unlock()
			return err
		}
	}
	r.pending.cfg, r.pending.sub, r.pending.release = nil, nil, nil
	r.pending.Unlock()
	r.mu.Lock()
	old := r.release
	r.current, r.release = sub, release
	r.mu.Unlock()
	old()
	return nil
}

// Close releases the current event.Subscriber and anything Check left.
func (r *Rebuilt) Close() {
	r.Discard()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.release()
}
