package rotate

import (
	"context"
	"sync"

	"github.com/sensu-tlsd/sensu-tlsd/config"
	"github.com/sensu-tlsd/sensu-tlsd/internal/event"
	"github.com/sensu-tlsd/sensu-tlsd/internal/reload"
)

// BuildFunc makes an event.Subscriber from a configuration, with the
// function that releases what it holds (a D-Bus connection).
type BuildFunc func(cfg *config.Config) (event.Subscriber, func(), error)

// Rebuilt is an event.Subscriber made from the configuration and made
// again on every reload, so consumers whose behaviour the config describes
// (the service actions, the Sensu config writer) follow a SIGHUP like the
// certificates do. As a reload.Reloader it builds once in Prepare; Commit
// swaps that build in, Abort releases it.
type Rebuilt struct {
	build BuildFunc

	// mu is held for reading while a change is delivered, so a swap waits
	// for an action in flight instead of closing its connection under it.
	mu      sync.RWMutex
	current event.Subscriber
	release func()
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

// Prepare builds the event.Subscriber of cfg, leaving the current one in
// place.
func (r *Rebuilt) Prepare(cfg *config.Config) (reload.Pending, error) {
	sub, release, err := r.build(cfg)
	if err != nil {
		return nil, err
	}
	return &rebuild{r: r, sub: sub, release: release}, nil
}

// Close releases the current event.Subscriber.
func (r *Rebuilt) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.release()
}

// rebuild is a build Prepare made, waiting for Commit or Abort.
type rebuild struct {
	r       *Rebuilt
	sub     event.Subscriber
	release func()
}

// Commit replaces the current event.Subscriber with the prepared one,
// after any change in flight has been delivered, and releases the old one.
func (b *rebuild) Commit(context.Context) error {
	b.r.mu.Lock()
	old := b.r.release
	b.r.current, b.r.release = b.sub, b.release
	b.r.mu.Unlock()
	old()
	return nil
}

// Abort releases the prepared build; the reload it was for is rejected.
func (b *rebuild) Abort() { b.release() }
