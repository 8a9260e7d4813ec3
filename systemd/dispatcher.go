package systemd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sensu-tlsd/sensu-tlsd/internal/event"
)

// Service is one process that must act when a certificate it uses changes.
type Service struct {
	Name    string
	Trigger Trigger
	Action  Action
	Health  Health
	// Serializer, when set, is held around the action and its health
	// gate, keeping them apart from other hosts' (a clustered
	// sensu-backend's members restart one at a time).
	Serializer Serializer
}

// DispatcherOptions configure a Dispatcher.
type DispatcherOptions struct {
	Services []*Service
	// Routes maps a certificate name to the services that use it.
	Routes map[string][]string
	// Coalesce is how long a service waits after the first change of a batch
	// for more changes to join it (0: no wait).
	Coalesce time.Duration
	// Parallel is how many services may act at once (0: 4).
	Parallel int
	// LockDir holds one lock file per service, shared with every other
	// sensu-tlsd process using the same state directory ("": none).
	LockDir string
	Log     *slog.Logger
	// Registry receives the dispatcher's metrics; nil means none.
	Registry *prometheus.Registry
}

// Dispatcher is the event.Subscriber that makes services pick up changes:
// it routes each change to its services, gathers changes arriving together
// into one batch per service, runs one action per batch (different
// services in parallel up to a limit, never two at once for one service),
// and checks health. An error from CertificateChanged means a service did
// not come back on the new set; the publisher then rolls back and
// publishes a ReasonRollback change, which runs the action and the checks
// again against the old serial. Nothing here retries a bad certificate.
type Dispatcher struct {
	all      map[string]*serviceRunner // by service name
	routes   map[string][]*serviceRunner
	coalesce time.Duration
	lockDir  string
	slots    chan struct{}
	log      *slog.Logger
	metrics  *metrics
	closers  []func()
}

// Close releases the systemd connection, if one was made.
func (d *Dispatcher) Close() {
	for _, c := range d.closers {
		c()
	}
}

// NewDispatcher checks that every route names a service.
func NewDispatcher(o DispatcherOptions) (*Dispatcher, error) {
	if o.Parallel <= 0 {
		o.Parallel = 4
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(o.Registry)
	if err != nil {
		return nil, err
	}
	d := &Dispatcher{routes: map[string][]*serviceRunner{}, coalesce: o.Coalesce, lockDir: o.LockDir, slots: make(chan struct{}, o.Parallel), log: o.Log, metrics: m}
	byName := map[string]*serviceRunner{}
	for _, s := range o.Services {
		if byName[s.Name] != nil {
			return nil, fmt.Errorf("service %q is defined twice", s.Name)
		}
		byName[s.Name] = &serviceRunner{svc: s, d: d}
	}
	d.all = byName
	var errs []error
	for _, cert := range slices.Sorted(maps.Keys(o.Routes)) {
		for _, n := range o.Routes[cert] {
			r, ok := byName[n]
			if !ok {
				errs = append(errs, fmt.Errorf("certificate %q lists service %q, which is not defined under services", cert, n))
				continue
			}
			d.routes[cert] = append(d.routes[cert], r)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return d, nil
}

// CertificateChanged hands c to every service that uses the certificate
// and waits until each has acted and passed its health check.
func (d *Dispatcher) CertificateChanged(ctx context.Context, c event.Change) error {
	runners := d.routes[c.Name]
	results := make([]*batchRun, len(runners))
	for i, r := range runners {
		results[i] = r.join(c)
	}
	var errs []error
	for _, br := range results {
		select {
		case <-br.done:
			if br.err != nil {
				errs = append(errs, br.err)
			}
		case <-ctx.Done():
			return fmt.Errorf("certificate %s: waiting for services: %w", c.Name, ctx.Err())
		}
	}
	return errors.Join(errs...)
}

// checks are the service's configured health checks, or, when it
// configures none, those its trigger derived for dec.
func (s *Service) checks(dec Decision) []Check {
	if len(s.Health.Checks) == 0 {
		return dec.Checks
	}
	return s.Health.Checks
}

// serviceRunner serialises one service's batches.
type serviceRunner struct {
	svc *Service
	d   *Dispatcher

	mu      sync.Mutex
	pending *batchRun // gathering changes; nil when none
	running sync.Mutex
}

// batchRun is one batch and, once done is closed, its result.
type batchRun struct {
	batch Batch
	done  chan struct{}
	err   error
}

// join adds c to the batch that is still gathering, or starts a new one.
func (r *serviceRunner) join(c event.Change) *batchRun {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pending != nil {
		r.pending.batch = append(r.pending.batch, c)
		return r.pending
	}
	br := &batchRun{batch: Batch{c}, done: make(chan struct{})}
	r.pending = br
	go r.run(br)
	return br
}

func (r *serviceRunner) run(br *batchRun) {
	defer close(br.done)
	time.Sleep(r.d.coalesce)
	// Changes keep joining while an earlier batch of this service runs, or
	// another process (`services act`) holds its lock: they then become
	// one action after it, not one each.
	r.running.Lock()
	defer r.running.Unlock()
	// With no deadline the lock waits as long as the other process acts,
	// and waiting is all that can fail.
	unlock, _ := r.lock(context.Background())
	defer unlock()
	r.mu.Lock()
	r.pending = nil
	batch := br.batch
	r.mu.Unlock()

	r.d.slots <- struct{}{}
	defer func() { <-r.d.slots }()
	br.err = r.act(context.Background(), batch)
}

// lock takes the service's lock file; the caller holds r.running. It
// fails only when ctx ends while another process holds the lock.
func (r *serviceRunner) lock(ctx context.Context) (func(), error) {
	return lockService(ctx, r.d.lockDir, r.svc.Name, r.d.log.With("service", r.svc.Name))
}

// act runs the action and the health check for one batch.
func (r *serviceRunner) act(ctx context.Context, b Batch) error {
	s, m := r.svc, r.d.metrics
	log := r.d.log.With("service", s.Name, "certificates", strings.Join(b.Names(), ","))
	kind := "change"
	if b.IsRollback() {
		kind = "rollback"
	}
	dec := s.Trigger.Decide(b)
	if !dec.Act {
		log.Info("no action needed", "reason", dec.Reason)
		m.actions.WithLabelValues(s.Name, kind, "skipped").Inc()
		return nil
	}
	if s.Serializer != nil {
		release, err := s.Serializer.Hold(ctx, log)
		if err != nil {
			m.actions.WithLabelValues(s.Name, kind, "action-failed").Inc()
			log.Error("action not run", "action", s.Action.String(), "err", err)
			return fmt.Errorf("service %s: %w", s.Name, err)
		}
		defer release() // after the health gate, passed or failed
	}
	log.Info("acting", "action", s.Action.String(), "reason", dec.Reason, "kind", kind)
	out, err := s.Action.Run(ctx, b)
	if err != nil {
		m.actions.WithLabelValues(s.Name, kind, "action-failed").Inc()
		log.Error("action failed", "action", s.Action.String(), "err", err)
		return fmt.Errorf("service %s: %w", s.Name, err)
	}
	if !out.Acted {
		log.Info("action left the service alone", "detail", out.Detail)
		m.actions.WithLabelValues(s.Name, kind, "skipped").Inc()
		return nil
	}
	health := s.Health
	health.Checks = s.checks(dec)
	if len(health.Checks) == 0 {
		m.actions.WithLabelValues(s.Name, kind, "ok").Inc()
		log.Info("action done; no health check configured, so nothing verified it", "detail", out.Detail)
		return nil
	}
	if err := health.Wait(ctx, dec.Expect); err != nil {
		m.actions.WithLabelValues(s.Name, kind, "unhealthy").Inc()
		m.healthFailures.WithLabelValues(s.Name, kind).Inc()
		log.Error("service did not come back healthy", "action", s.Action.String(), "kind", kind,
			"serials", strings.Join(dec.Expect.Serials, ","), "err", err)
		return fmt.Errorf("service %s after %s (%s of certificate %s): %w",
			s.Name, s.Action, kind, strings.Join(b.Names(), ", "), err)
	}
	m.actions.WithLabelValues(s.Name, kind, "ok").Inc()
	log.Info("service healthy", "detail", out.Detail, "serials", strings.Join(dec.Expect.Serials, ","))
	return nil
}

// metrics are the dispatcher's Prometheus series.
type metrics struct {
	actions        *prometheus.CounterVec
	healthFailures *prometheus.CounterVec
}

func newMetrics(reg *prometheus.Registry) (*metrics, error) {
	m := &metrics{
		actions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sensu_tlsd_service_actions_total",
			Help: "Service actions after certificate changes, by service, kind (change or rollback) and result (ok, skipped, action-failed, unhealthy).",
		}, []string{"service", "kind", "result"}),
		healthFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sensu_tlsd_service_health_failures_total",
			Help: "Services that did not come back healthy after an action, by service and kind (change or rollback).",
		}, []string{"service", "kind"}),
	}
	if reg != nil {
		var err error
		if m.actions, err = registerOnce(reg, m.actions); err != nil {
			return nil, err
		}
		if m.healthFailures, err = registerOnce(reg, m.healthFailures); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// registerOnce registers c, or returns the collector a dispatcher built
// before this one (a reload builds a new dispatcher) already registered,
// so the counters keep counting across reloads.
func registerOnce(reg *prometheus.Registry, c *prometheus.CounterVec) (*prometheus.CounterVec, error) {
	err := reg.Register(c)
	var already prometheus.AlreadyRegisteredError
	switch {
	case err == nil:
		return c, nil
	case errors.As(err, &already):
		if existing, ok := already.ExistingCollector.(*prometheus.CounterVec); ok {
			return existing, nil
		}
	}
	return nil, fmt.Errorf("registering service metrics: %w", err)
}
