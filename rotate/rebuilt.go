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
// certificates do. It is a reloader for the daemon: Check builds and keeps
// the result, Apply swaps it in (building once per reload, so what a build
// logs is logged once).
type Rebuilt struct {
	build BuildFunc

	// mu is held for reading while a change is delivered, so a swap waits
	// for an action in flight instead of closing its connection under it.
	mu      sync.RWMutex
	current Subscriber
	release func()

	// checked is what Check built for checkedCfg, waiting for Apply.
	pendingMu  sync.Mutex
	checkedCfg *config.Config
	checked    Subscriber
	checkedRel func()
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

// Check reports whether cfg builds, and keeps what it built for Apply.
func (r *Rebuilt) Check(cfg *config.Config) error {
	sub, release, err := r.build(cfg)
	if err != nil {
		return err
	}
	r.pendingMu.Lock()
	defer r.pendingMu.Unlock()
	r.dropChecked()
	r.checkedCfg, r.checked, r.checkedRel = cfg, sub, release
	return nil
}

// dropChecked releases a Check's build that no Apply took; pendingMu held.
func (r *Rebuilt) dropChecked() {
	if r.checkedRel != nil {
		r.checkedRel()
	}
	r.checkedCfg, r.checked, r.checkedRel = nil, nil, nil
}

// Apply replaces the current Subscriber with one built from cfg (the one
// Check built for it, if any), after any change in flight has been
// delivered.
func (r *Rebuilt) Apply(_ context.Context, cfg *config.Config) error {
	r.pendingMu.Lock()
	sub, release := r.checked, r.checkedRel
	if r.checkedCfg != cfg {
		r.dropChecked()
		var err error
		if sub, release, err = r.build(cfg); err != nil {
			r.pendingMu.Unlock()
			return err
		}
	}
	r.checkedCfg, r.checked, r.checkedRel = nil, nil, nil
	r.pendingMu.Unlock()
	r.mu.Lock()
	old := r.release
	r.current, r.release = sub, release
	r.mu.Unlock()
	old()
	return nil
}

// Close releases the current Subscriber.
func (r *Rebuilt) Close() {
	r.pendingMu.Lock()
	r.dropChecked()
	r.pendingMu.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.release()
}
