package rotate

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"sync"

	"github.com/sensu-tlsd/sensu-tlsd/internal/certstate"
	"github.com/sensu-tlsd/sensu-tlsd/internal/event"
	"github.com/sensu-tlsd/sensu-tlsd/internal/watch"
)

// Manager keeps every planned certificate valid: it schedules renewals,
// follows the files on disk, and drives issue → validate → install →
// publish for each certificate in its own goroutine (a runner).
type Manager struct {
	bus     *event.Bus
	metrics *Metrics
	log     *slog.Logger
	clock   clock

	mu      sync.Mutex
	runners map[string]*runner
	watcher *watch.Watcher
	ctx     context.Context
	wg      sync.WaitGroup
}

// NewManager returns a manager that announces changes on bus (consumers
// subscribe before Run) and records them in metrics.
func NewManager(bus *event.Bus, metrics *Metrics, log *slog.Logger) *Manager {
	return &Manager{bus: bus, metrics: metrics, log: log, clock: systemClock{}, runners: map[string]*runner{}}
}

// Run follows and renews plans until ctx ends. ready is called once every
// certificate's initial state is loaded and its schedule is set.
func (m *Manager) Run(ctx context.Context, plans []Plan, ready func()) error {
	w, err := watch.New(watch.DefaultDebounce)
	if err != nil {
		return fmt.Errorf("starting the file watcher: %w", err)
	}
	m.mu.Lock()
	m.watcher, m.ctx = w, ctx
	m.mu.Unlock()
	watchErr := make(chan error, 1)
	go func() { watchErr <- w.Run(ctx) }()
	go m.dispatch(ctx, w)
	if err := m.apply(plans); err != nil {
		return err
	}
	if ready != nil {
		ready()
	}
	select {
	case <-ctx.Done():
		err = nil
	case err = <-watchErr:
		err = fmt.Errorf("file watcher: %w", err)
	}
	m.wg.Wait()
	return err
}

func (m *Manager) dispatch(ctx context.Context, w *watch.Watcher) {
	for {
		select {
		case <-ctx.Done():
			return
		case name := <-w.Changes():
			m.mu.Lock()
			r := m.runners[name]
			m.mu.Unlock()
			if r != nil {
				select {
				case r.changed <- struct{}{}:
				default: // one pending notification is enough
				}
			}
		}
	}
}

// Apply makes the running set of certificates match plans (a reload):
// removed ones stop, changed ones restart with their new plan, new ones
// start. Each runner finishes its initial load before Apply returns. A
// reload is an operator's word, so every certificate forgets the serial
// consumers rejected.
func (m *Manager) Apply(plans []Plan) error {
	if err := m.apply(plans); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range m.runners {
		select {
		case r.reset <- struct{}{}:
		default: // one pending reset is enough
		}
	}
	return nil
}

// Alive returns once the manager's lock is free. A manager wedged in a
// reload or in routing file changes never returns, so the systemd
// watchdog, which pings only after Alive returns, stops and systemd
// restarts the daemon. A runner waiting on a consumer does not hold the
// lock and is not caught here.
func (m *Manager) Alive() {
	m.mu.Lock()
	defer m.mu.Unlock()
}

func (m *Manager) apply(plans []Plan) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	want := map[string]Plan{}
	for _, p := range plans {
		want[p.Name] = p
	}
	for name, r := range m.runners {
		if p, ok := want[name]; !ok || !samePlan(p, r.plan) {
			r.stop()
			m.watcher.Remove(name)
			delete(m.runners, name)
			if !ok {
				m.metrics.forget(name)
				m.log.Info("certificate no longer managed", "name", name)
			}
		}
	}
	for _, p := range plans {
		if _, ok := m.runners[p.Name]; ok {
			continue
		}
		r, err := m.newRunner(p)
		if err != nil {
			return err
		}
		m.runners[p.Name] = r
		ctx, cancel := context.WithCancel(m.ctx)
		r.cancel, r.done = cancel, make(chan struct{})
		loaded := make(chan struct{})
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			defer close(r.done)
			r.run(ctx, loaded)
		}()
		<-loaded
	}
	return nil
}

// samePlan reports whether a and b manage a certificate alike. Their
// issuers are built from the plan, so only the settings are compared (two
// ACME issuers built from one config hold distinct pools).
func samePlan(a, b Plan) bool {
	a.issuer, b.issuer = nil, nil
	return reflect.DeepEqual(a, b)
}

func (m *Manager) newRunner(p Plan) (*runner, error) {
	if p.issuer == nil {
		return nil, fmt.Errorf("certificate %s: the plan was not made by rotate.Plans (it has no issuer)", p.Name)
	}
	st, err := newStore(p)
	if err != nil {
		return nil, fmt.Errorf("certificate %s: %w", p.Name, err)
	}
	log := m.log.With("name", p.Name)
	prev, err := certstate.Read(certstate.File(p.Dir))
	if err != nil {
		// Starting afresh is safe (the set on disk is validated anyway),
		// but what only the state held is gone; say what.
		log.Warn("the state file is unreadable and is replaced; lost with it: the serial consumers rejected (it may be installed again), "+
			"the failure count and the recorded next renewal", "file", certstate.File(p.Dir), "error", err)
		prev = certstate.State{}
	}
	prev.Name = p.Name
	if p.HostsFrom != "" {
		log.Info("hosts read from Sensu's configs, as the certificate sets none", "hosts", strings.Join(p.Hosts, ","), "from", p.HostsFrom)
	}
	return &runner{
		m: m, plan: p, issuer: p.issuer, store: st, state: prev,
		log:     log,
		changed: make(chan struct{}, 1),
		reset:   make(chan struct{}, 1),
	}, nil
}
