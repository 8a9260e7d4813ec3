package rotate

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"syscall"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/internal/event"
	"github.com/sensu-tlsd/sensu-tlsd/internal/pki"
	"github.com/sensu-tlsd/sensu-tlsd/internal/watch"
	"github.com/sensu-tlsd/sensu-tlsd/rotate/install"
)

// externalGrace is how long an invalid replacement may stay on disk before
// the last valid set is put back: a tool replacing cert and key with two
// separate renames is briefly inconsistent and must not be undone mid-way.
const externalGrace = time.Second

// Manager keeps every planned certificate valid: it schedules renewals,
// follows the files on disk, and drives issue → validate → install →
// publish for each certificate in its own goroutine.
type Manager struct {
	bus     *event.Bus
	metrics *Metrics
	log     *slog.Logger

	mu      sync.Mutex
	runners map[string]*runner
	watcher *watch.Watcher
	ctx     context.Context
	wg      sync.WaitGroup
}

// NewManager returns a manager that announces changes on bus (consumers
// subscribe before Run) and records them in metrics.
func NewManager(bus *event.Bus, metrics *Metrics, log *slog.Logger) *Manager {
	return &Manager{bus: bus, metrics: metrics, log: log, runners: map[string]*runner{}}
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
	if err := m.apply(plans, false); err != nil {
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
func (m *Manager) Apply(plans []Plan) error { return m.apply(plans, true) }

// Alive returns once the manager's lock is free. A manager wedged in a
// reload or in routing file changes never returns, so the systemd
// watchdog, which pings only after Alive returns, stops and systemd
// restarts the daemon. A runner waiting on a consumer does not hold the
// lock and is not caught here.
func (m *Manager) Alive() {
	m.mu.Lock()
	defer m.mu.Unlock()
}

func (m *Manager) apply(plans []Plan, reload bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	want := map[string]Plan{}
	for _, p := range plans {
		want[p.Name] = p
	}
	for name, r := range m.runners {
		if p, ok := want[name]; !ok || !reflect.DeepEqual(p, r.plan) {
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
	if reload {
		for _, r := range m.runners {
			select {
			case r.reset <- struct{}{}:
			default: // one pending reset is enough
			}
		}
	}
	return nil
}

func (m *Manager) newRunner(p Plan) (*runner, error) {
	iss, err := newIssuer(p)
	if err != nil {
		return nil, fmt.Errorf("certificate %s: issuer: %w", p.Name, err)
	}
	st, err := newStore(p)
	if err != nil {
		return nil, fmt.Errorf("certificate %s: %w", p.Name, err)
	}
	prev, _ := readStateFile(stateFile(p.Dir))
	prev.Name = p.Name
	return &runner{
		m: m, plan: p, issuer: iss, store: st, state: prev,
		log:     m.log.With("name", p.Name),
		changed: make(chan struct{}, 1),
		reset:   make(chan struct{}, 1),
	}, nil
}

// Result is what one renewal attempt did, for `sensu-tlsd renew`.
type Result struct {
	Name       string
	Skipped    string // why nothing was done (not due), "" otherwise
	DryRun     bool
	Serial     string
	NotAfter   time.Time
	Generation int
}

// RenewOnce renews one certificate now, outside the daemon: when it is due
// (or force), issue, validate and, unless dryRun, install and publish. It
// holds the certificate's lock from load to commit, as the daemon's
// attempts do, so a running daemon's runner waits instead of recovering or
// installing over it, and then sees the new generation.
func (m *Manager) RenewOnce(ctx context.Context, p Plan, force, dryRun bool) (Result, error) {
	r, err := m.newRunner(p)
	if err != nil {
		return Result{}, err
	}
	unlock, err := r.lock()
	if err != nil {
		return Result{}, err
	}
	defer unlock()
	r.load()
	res := Result{Name: p.Name, DryRun: dryRun}
	if due := r.dueAt(); !force && r.leaf != nil && time.Now().Before(due) {
		rejected := ""
		if s := r.state.RejectedSerial; s != "" {
			rejected = fmt.Sprintf("; consumers rejected serial %s, which is not installed again", s)
		}
		res.Skipped = fmt.Sprintf("not due: serial %s expires %s, renewal from %s%s (use --force to renew anyway)",
			pki.SerialHex(r.leaf), r.leaf.NotAfter.Format(time.RFC3339), due.Format(time.RFC3339), rejected)
		return res, nil
	}
	if force {
		r.clearRejection()
	}
	set, ps, f := r.candidate(ctx)
	if f != nil {
		r.fail(f.reason, f.err, time.Now())
		return res, f.err
	}
	res.Serial, res.NotAfter = pki.SerialHex(ps.Leaf()), ps.Leaf().NotAfter
	if dryRun {
		return res, nil
	}
	reason := event.ReasonRenewal
	if r.leaf == nil {
		reason = event.ReasonInitial
	}
	if ferr := r.commit(ctx, set, ps, reason, true); ferr != nil {
		return res, ferr.err
	}
	res.Generation = r.state.Generation
	return res, nil
}

// dueAt is when the installed set is renewed: when the daemon recorded it
// for this serial (its own jitter draw, its backoff), else by the plan.
// Zero when no valid set is installed.
func (r *runner) dueAt() time.Time {
	switch {
	case r.leaf == nil:
		return time.Time{}
	case !r.state.NextRenewal.IsZero() && r.state.Serial == pki.SerialHex(r.leaf):
		return r.state.NextRenewal
	default:
		return r.plan.RenewAt(r.leaf)
	}
}

// runner owns one certificate: only its goroutine touches its fields.
type runner struct {
	m       *Manager
	plan    Plan
	issuer  Issuer
	store   store
	log     *slog.Logger
	changed chan struct{}
	reset   chan struct{} // a reload: forget the serial consumers rejected
	cancel  context.CancelFunc
	done    chan struct{}

	known install.Set       // bytes of the last valid set on disk
	leaf  *x509.Certificate // its leaf; nil when there is no valid set
	gen   int
	// found is an invalid set load found on disk (expired, say), with its
	// serial, so the change that replaces it names what it replaced.
	found       install.Set
	foundSerial string
	state       CertState
}

func (r *runner) stop() {
	r.cancel()
	<-r.done
}

// failure is an attempt that went wrong, with its metric reason.
type failure struct {
	reason string
	err    error
}

func (r *runner) run(ctx context.Context, loaded chan<- struct{}) {
	if unlock, err := r.lock(); err != nil {
		r.log.Error("cannot lock the certificate's state directory", "error", err)
	} else {
		r.load()
		unlock()
	}
	r.refreshWatch()
	r.m.metrics.rejected.WithLabelValues(r.plan.Name).Set(boolGauge(r.state.RejectedSerial != ""))
	movedFrom, moved := r.movedFrom()
	if r.leaf != nil && !moved {
		r.recordPaths() // a first start, or paths unchanged: nothing to announce
	}
	next := time.Now()
	if r.leaf != nil {
		next = r.plan.RenewAt(r.leaf)
	}
	r.schedule(next)
	close(loaded)
	if moved {
		r.announceMove(ctx, movedFrom)
	}

	timer := time.NewTimer(untilCapped(next))
	defer timer.Stop()
	var grace <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.changed:
			if r.external(ctx) {
				grace = time.After(externalGrace)
			} else {
				grace = nil
			}
		case <-grace:
			grace = nil
			r.restoreIfStillInvalid(ctx)
		case <-r.reset:
			r.forgetRejection()
		case <-timer.C:
			if !time.Now().Before(r.state.NextRenewal) {
				r.attempt(ctx)
			}
		}
		timer.Stop()
		timer.Reset(untilCapped(r.state.NextRenewal))
	}
}

// maxSleep bounds one timer wait. Timers run on the monotonic clock, which
// stands still while a machine is suspended; waking at least hourly and
// comparing with the wall clock keeps a renewal from being days late.
const maxSleep = time.Hour

func untilCapped(t time.Time) time.Duration { return min(time.Until(t), maxSleep) }

// load reads the set on disk (finishing any interrupted install first) and
// keeps it when it is valid for the plan.
func (r *runner) load() {
	if err := r.store.Recover(); err != nil {
		r.log.Error("recovering an interrupted install", "dir", r.plan.Dir, "error", err)
	}
	r.gen, _ = r.store.Current()
	r.keepKeyModes()
	set, err := r.store.ReadConfigured()
	if err != nil {
		r.log.Info("no complete certificate set on disk yet; issuing one", "cert", r.plan.Paths.Cert, "reason", err.Error())
		return
	}
	ps, err := validate(set, r.plan, time.Now())
	if err != nil {
		r.found = set
		if chain, perr := pki.ParseCertificatesPEM(set.Cert); perr == nil && len(chain) > 0 {
			r.foundSerial = pki.SerialHex(chain[0])
		}
		r.log.Warn("the certificate set on disk is not valid for its plan; issuing a new one", "serial", r.foundSerial, "error", err)
		return
	}
	r.setKnown(set, ps.Leaf(), r.gen)
}

// movedFrom reports the paths consumers last took the valid set on disk
// at, when the plan now gives it others. Install.Recover has already
// linked the new paths; consumers (Sensu's files, services) still read the
// old ones.
func (r *runner) movedFrom() (install.Paths, bool) {
	old := install.Paths{Cert: r.state.CertFile, Key: r.state.KeyFile, CA: r.state.CAFile}
	return old, r.leaf != nil && old.Cert != "" && !samePaths(old, r.plan.Paths)
}

// samePaths reports whether a and b link a set at the same files.
func samePaths(a, b install.Paths) bool {
	return a.Cert == b.Cert && a.Key == b.Key && a.CA == b.CA
}

// recordPaths notes where the set is linked once consumers have it there.
// Until then state.json keeps the old paths, so a move that was never
// announced (a failed publish, a daemon killed first) is at the next start.
func (r *runner) recordPaths() {
	r.state.CertFile, r.state.KeyFile, r.state.CAFile = r.plan.Paths.Cert, r.plan.Paths.Key, r.plan.Paths.CA
}

// announceMove publishes the set at its new paths, every one of them new
// to consumers. There is nothing to roll back to (the config names the new
// paths), so a consumer's refusal is reported, not undone.
func (r *runner) announceMove(ctx context.Context, from install.Paths) {
	p := r.plan.Paths
	r.log.Info("certificate moved", "serial", r.state.Serial, "cert", p.Cert, "key", p.Key, "ca", p.CA,
		"old_cert", from.Cert, "old_key", from.Key, "old_ca", from.CA)
	change := event.Change{
		Name: r.plan.Name, Reason: event.ReasonMoved, OldSerial: r.state.Serial, NewSerial: r.state.Serial,
		Generation: r.gen, NotAfter: r.leaf.NotAfter,
		CertFile: p.Cert, KeyFile: p.Key, CAFile: p.CA,
		Files: []string{p.Cert, p.Key, p.CA},
	}
	published := time.Now()
	if err := r.m.bus.Publish(ctx, change); err != nil {
		if ctx.Err() != nil {
			return
		}
		r.state.LastError, r.state.LastErrorAt, r.state.Reason = "consumers could not take the moved certificate: "+err.Error()+"; "+moveAdvice, time.Now(), FailConsumer
		r.saveState()
		r.log.Error("consumers could not take the certificate at its new paths; "+moveAdvice, "error", err)
		return
	}
	r.recordPaths()
	r.saveState()
	r.log.Info("consumers took the certificate", "new_serial", change.NewSerial, "generation", r.gen, "took", time.Since(published).Round(time.Millisecond).String())
}

// moveAdvice is true because a move is recorded only once consumers took it.
const moveAdvice = "once the service is fixed, restart sensu-tlsd: the move is announced again at start"

func (r *runner) setKnown(set install.Set, leaf *x509.Certificate, gen int) {
	r.known, r.leaf, r.gen = set, leaf, gen
	r.found, r.foundSerial = install.Set{}, ""
	r.state.Serial = pki.SerialHex(leaf)
	r.state.NotAfter = leaf.NotAfter
	r.state.Generation = gen
	r.m.metrics.expiry.WithLabelValues(r.plan.Name).Set(float64(leaf.NotAfter.Unix()))
	r.m.metrics.generation.WithLabelValues(r.plan.Name).Set(float64(gen))
}

func (r *runner) schedule(at time.Time) {
	r.state.NextRenewal = at
	r.m.metrics.nextRenewal.WithLabelValues(r.plan.Name).Set(float64(at.Unix()))
	r.saveState()
}

func (r *runner) saveState() {
	if err := writeState(r.plan, r.state); err != nil {
		r.log.Error("writing the state file", "dir", r.plan.Dir, "error", err)
	}
}

func (r *runner) refreshWatch() {
	// watcher is set before any runner starts and never changes.
	w := r.m.watcher
	if w == nil {
		return
	}
	if err := w.Set(r.plan.Name, []string{r.plan.Paths.Cert, r.plan.Paths.Key, r.plan.Paths.CA}); err != nil {
		r.log.Error("watching the certificate files", "error", err)
	}
}

// lock serialises installs of this certificate across processes (the
// daemon and a `sensu-tlsd renew` run by hand).
func (r *runner) lock() (func(), error) {
	if err := os.MkdirAll(r.plan.Dir, 0o755); err != nil {
		return nil, err
	}
	return flock(filepath.Join(r.plan.Dir, ".lock"))
}

// flock takes an exclusive lock on path, creating it; the returned func
// releases it.
func flock(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking %s: %w", f.Name(), err)
	}
	return func() { f.Close() }, nil
}

// attempt is one scheduled renewal (or first issue).
func (r *runner) attempt(ctx context.Context) {
	unlock, err := r.lock()
	if err != nil {
		r.fail(FailInstall, err, time.Now())
		return
	}
	defer unlock()
	set, ps, f := r.candidate(ctx)
	if f != nil {
		r.fail(f.reason, f.err, time.Now())
		return
	}
	reason := event.ReasonRenewal
	if r.leaf == nil {
		reason = event.ReasonInitial
	}
	if f := r.commit(ctx, set, ps, reason, true); f != nil {
		r.fail(f.reason, f.err, time.Now())
	}
}

// candidate asks the issuer for a set and validates it.
func (r *runner) candidate(ctx context.Context) (install.Set, *pki.Set, *failure) {
	stage, err := os.MkdirTemp(r.plan.Dir, ".tmp-stage-")
	if err != nil {
		return install.Set{}, nil, &failure{FailIssue, err}
	}
	defer os.RemoveAll(stage)
	set, err := r.issuer.Issue(ctx, r.plan, stage)
	if err != nil {
		return set, nil, &failure{FailIssue, err}
	}
	ps, err := validate(set, r.plan, time.Now())
	if err != nil {
		return set, nil, &failure{FailValidate, fmt.Errorf("candidate rejected, the installed set stays: %w", err)}
	}
	if r.leaf != nil && pki.SerialHex(ps.Leaf()) == pki.SerialHex(r.leaf) {
		return set, nil, &failure{FailIssue, fmt.Errorf("the issuer returned the certificate already installed (serial %s); whatever renews %s has not run", pki.SerialHex(r.leaf), r.plan.Paths.Cert)}
	}
	if err := r.refusedAgain(ps.Leaf()); err != nil {
		return set, nil, &failure{FailValidate, fmt.Errorf("issuer: %w", err)}
	}
	return set, ps, nil
}

// refusedAgain refuses a set holding the serial consumers rejected, from
// the issuer or put in place by hand alike, until a reload forgets it.
func (r *runner) refusedAgain(leaf *x509.Certificate) error {
	s := pki.SerialHex(leaf)
	if r.state.RejectedSerial == "" || s != r.state.RejectedSerial {
		return nil
	}
	return fmt.Errorf("serial %s was rejected by consumers and is not installed again; once the service is fixed, reload sensu-tlsd (SIGHUP) to allow it", s)
}

// commit installs a validated set (unless it is already on disk) and
// announces it. If a consumer rejects it, the previous set goes back (see
// rejected); if the daemon is shutting down meanwhile, nothing goes back.
func (r *runner) commit(ctx context.Context, set install.Set, ps *pki.Set, reason event.Reason, installNew bool) *failure {
	r.keepKeyModes()
	prev, prevLeaf := r.known, r.leaf
	oldSet, oldSerial := r.found, r.foundSerial
	if r.leaf != nil {
		oldSet, oldSerial = r.known, pki.SerialHex(r.leaf)
	}
	gen := r.gen
	if installNew {
		var err error
		if gen, err = r.store.Install(set); err != nil {
			return &failure{FailInstall, err}
		}
	}
	r.setKnown(set, ps.Leaf(), gen)
	r.refreshWatch()
	change := event.Change{
		Name: r.plan.Name, Reason: reason, OldSerial: oldSerial, NewSerial: r.state.Serial,
		Generation: gen, NotAfter: ps.Leaf().NotAfter,
		CertFile: r.plan.Paths.Cert, KeyFile: r.plan.Paths.Key, CAFile: r.plan.Paths.CA,
		Files: changedFiles(oldSet, set, r.plan.Paths),
	}
	r.log.Info("certificate changed", "reason", string(reason), "old_serial", oldSerial, "new_serial", change.NewSerial,
		"generation", gen, "not_after", change.NotAfter.Format(time.RFC3339))
	if len(oldSet.CA) > 0 && !bytes.Equal(oldSet.CA, set.CA) {
		r.logCAChange(oldSet.CA, set.CA)
	}
	published := time.Now()
	if err := r.m.bus.Publish(ctx, change); err != nil {
		if ctx.Err() != nil {
			r.interrupted(change, err)
			return nil
		}
		return r.rejected(ctx, change, prev, prevLeaf, err)
	}
	now := time.Now()
	// The change is in use only now: listeners serve it, restarted
	// services passed their health gate.
	r.log.Info("consumers took the certificate", "new_serial", change.NewSerial, "generation", gen, "took", now.Sub(published).Round(time.Millisecond).String())
	r.state.LastSuccess, r.state.Failures, r.state.LastError, r.state.Reason = now, 0, "", ""
	r.state.Renewals++
	r.clearRejection()
	r.recordPaths()
	r.m.metrics.renewals.WithLabelValues(r.plan.Name, string(reason)).Inc()
	r.m.metrics.lastSuccess.WithLabelValues(r.plan.Name).Set(float64(now.Unix()))
	r.schedule(r.renewalOf(ps.Leaf(), now))
	return nil
}

// renewalOf is when leaf, just installed, is renewed.
func (r *runner) renewalOf(leaf *x509.Certificate, now time.Time) time.Time {
	next := r.plan.RenewAt(leaf)
	if !next.After(now) {
		// A renew-before longer than the lifetime would renew in a loop.
		r.log.Warn("renew-before leaves no time between renewals; waiting retry-min", "renew_at", next.Format(time.RFC3339), "retry_min", r.plan.RetryMin.String())
		next = now.Add(r.plan.RetryMin)
	}
	return next
}

// interrupted records a stop (shutdown, or a reload that replaced this
// runner) that came while consumers were taking c.
// The new set stays: a restarted service may already serve it, and putting
// the old files back under it would make the mismatch, not undo it.
func (r *runner) interrupted(c event.Change, err error) {
	now := time.Now()
	r.state.Renewals++
	r.state.LastError = fmt.Sprintf("stopped (shutdown or reload) before consumers confirmed serial %s (generation %d); it stays installed, not rolled back: %v", c.NewSerial, c.Generation, err)
	r.state.LastErrorAt, r.state.Reason = now, interruptedReason
	r.recordPaths() // consumers were being told c's paths
	r.log.Warn("stopped while consumers were taking the new certificate; it stays installed, not rolled back",
		"serial", c.NewSerial, "generation", c.Generation, "error", err)
	r.schedule(r.renewalOf(r.leaf, now))
}

// rejected handles consumers refusing bad, the set just installed over
// prev: the refused serial is remembered so it is never installed again,
// and prev goes back when it is still valid. The failure it returns says
// what ends the refusal; fail schedules the next attempt.
func (r *runner) rejected(ctx context.Context, bad event.Change, prev install.Set, prevLeaf *x509.Certificate, cause error) *failure {
	refused := r.state.RejectedSerial
	r.state.RejectedSerial = bad.NewSerial
	r.m.metrics.rejected.WithLabelValues(r.plan.Name).Set(1)
	if err := r.rollback(ctx, bad, prev, prevLeaf, refused); err != nil {
		r.log.Error("a consumer rejected the new set and it cannot be rolled back; it stays installed", "serial", bad.NewSerial, "error", err)
		return &failure{FailConsumer, fmt.Errorf("consumers rejected serial %s, which stays installed because %v: %w; %s", bad.NewSerial, err, cause, r.refusalAdvice(bad.Reason))}
	}
	return &failure{FailConsumer, fmt.Errorf("consumers rejected serial %s, serial %s is back: %w; %s", bad.NewSerial, r.state.Serial, cause, r.refusalAdvice(bad.Reason))}
}

// refusalAdvice is what moves a certificate on once the service that
// refused a set of it (the change's reason) is fixed. A reload forgets the
// refused serial but issues nothing before the installed set is due, and
// `renew --force` from another process ends the daemon's refusal only by
// installing a new serial, which files another tool owns never get.
func (r *runner) refusalAdvice(reason event.Reason) string {
	if _, ok := r.store.(followedFiles); ok {
		return "once the service is fixed, have the tool that writes " + r.plan.Paths.Cert + " put a new set in place; sensu-tlsd follows it"
	}
	if reason == event.ReasonExternal {
		return "once the service is fixed, reload sensu-tlsd (SIGHUP) and put the certificate in place again"
	}
	return "once the service is fixed, sensu-tlsd renew " + r.plan.Name + " --force issues a new certificate now"
}

// rollback puts prev, the set installed before bad, back and announces it.
// prev is checked again first, since it may have expired meanwhile or be
// the set consumers refused before (serial refused); then nothing changes
// and the reason is returned.
func (r *runner) rollback(ctx context.Context, bad event.Change, prev install.Set, prevLeaf *x509.Certificate, refused string) error {
	if prevLeaf == nil {
		return errors.New("there is no valid earlier set to go back to")
	}
	serial := pki.SerialHex(prevLeaf)
	if serial == refused {
		return fmt.Errorf("the earlier set (serial %s) was rejected by consumers too", serial)
	}
	ps, err := validate(prev, r.plan, time.Now())
	if err != nil {
		return fmt.Errorf("the earlier set (serial %s) is no longer valid: %w", serial, err)
	}
	gen, err := r.store.Rollback(prev)
	if err != nil {
		return err
	}
	r.setKnown(prev, ps.Leaf(), gen)
	r.refreshWatch()
	back := event.Change{
		Name: r.plan.Name, Reason: event.ReasonRollback, OldSerial: bad.NewSerial, NewSerial: serial,
		Generation: gen, NotAfter: ps.Leaf().NotAfter,
		CertFile: bad.CertFile, KeyFile: bad.KeyFile, CAFile: bad.CAFile, Files: bad.Files,
	}
	r.m.metrics.renewals.WithLabelValues(r.plan.Name, string(event.ReasonRollback)).Inc()
	r.log.Warn("rolled back to the previous certificate set", "bad_serial", bad.NewSerial, "serial", serial, "generation", gen)
	if err := r.m.bus.Publish(ctx, back); err != nil {
		r.log.Error("consumers also failed on the rolled-back set", "error", err)
	}
	return nil
}

// clearRejection forgets the serial consumers rejected, with the failures
// counted since (refusing it again included): a consumer's refusal is
// over, whatever failed last.
func (r *runner) clearRejection() {
	if r.state.RejectedSerial != "" {
		r.state.Failures, r.state.Reason, r.state.LastError = 0, "", ""
	}
	r.state.RejectedSerial = ""
	r.m.metrics.rejected.WithLabelValues(r.plan.Name).Set(0)
}

// forgetRejection ends a rejection on a reload: the refused serial may be
// installed again, and the next attempt is as keptUntil says, or now.
func (r *runner) forgetRejection() {
	refused := r.state.RejectedSerial
	if refused == "" {
		return
	}
	next := later(time.Now(), r.keptUntil(refused))
	r.clearRejection()
	r.log.Info("configuration reloaded: the serial consumers rejected may be installed again", "rejected_serial", refused,
		"next_attempt", next.Format(time.RFC3339))
	r.schedule(next)
}

// keptUntil is how long the installed set stays after consumers refused
// serial refused: until it is due when it is not the refused one (the
// previous set is back), so an operator's own certificate is not replaced
// by an unasked-for one and the services are not restarted again; until it
// is due too for files another tool owns, which only that tool replaces.
// Zero when the refused set stays and a new one is wanted.
func (r *runner) keptUntil(refused string) time.Time {
	_, followed := r.store.(followedFiles)
	if r.leaf == nil || (!followed && pki.SerialHex(r.leaf) == refused) {
		return time.Time{}
	}
	return r.plan.RenewAt(r.leaf)
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// fail records a failed attempt and backs off; it never retries at once.
// After a consumer's refusal the backoff holds even in an emergency: every
// attempt restarts the services twice (new set, then rollback), and
// retrying faster does not make a service accept a set.
func (r *runner) fail(reason string, err error, now time.Time) {
	r.state.Failures++
	r.state.LastError, r.state.LastErrorAt, r.state.Reason = err.Error(), now, reason
	r.m.metrics.failures.WithLabelValues(r.plan.Name, reason).Inc()
	var notAfter time.Time
	if r.leaf != nil {
		notAfter = r.leaf.NotAfter
	}
	delay := r.plan.RetryAfter(r.state.Failures, notAfter, now)
	next := now.Add(delay)
	if reason == FailConsumer {
		delay = r.plan.backoff(r.state.Failures)
		next = later(now.Add(delay), r.keptUntil(r.state.RejectedSerial))
	}
	r.log.Error("renewal failed", "reason", reason, "error", err, "failures", r.state.Failures,
		"emergency", r.plan.inEmergency(notAfter, now), "retry_in", delay.String(), "next_attempt", next.Format(time.RFC3339))
	r.schedule(next)
}

// external handles a change on disk that the runner did not make. It
// returns true when the new content is invalid and the grace period for
// the replacement to become whole starts.
func (r *runner) external(ctx context.Context) bool {
	// Under the lock, an install by another sensu-tlsd process (renew) is
	// read whole, never half done.
	unlock, lerr := r.lock()
	if lerr != nil {
		r.log.Error("cannot lock the certificate's state directory", "error", lerr)
		return false
	}
	defer unlock()
	set, err := r.store.ReadConfigured()
	if err == nil && set.Equal(r.known) {
		return false // our own install, or a rewrite with the same bytes
	}
	var ps *pki.Set
	if err == nil {
		ps, err = validate(set, r.plan, time.Now())
	}
	if err == nil {
		err = r.refusedAgain(ps.Leaf())
	}
	if err != nil {
		r.state.LastError, r.state.LastErrorAt, r.state.Reason = "replacement rejected: "+err.Error(), time.Now(), FailExternal
		r.m.metrics.failures.WithLabelValues(r.plan.Name, FailExternal).Inc()
		r.log.Warn("replacement on disk rejected; the last valid set is put back unless it becomes valid within the grace period",
			"error", err, "grace", externalGrace.String())
		r.saveState()
		return true
	}
	// Installed by another sensu-tlsd process (renew) when the configured
	// paths read exactly the current generation; otherwise adopt the
	// replacement as a new generation so rollback has something to go to.
	gen, _ := r.store.Current()
	reason, installNew := event.ReasonExternal, true
	if gen != r.gen && gen != 0 {
		if cur, err := r.store.ReadConfigured(); err == nil && cur.Equal(set) {
			if g, err := r.readGeneration(gen); err == nil && g.Equal(set) {
				reason, installNew = event.ReasonRenewal, false
			}
		}
	}
	if _, ok := r.store.(followedFiles); ok {
		installNew = false
	}
	if !installNew {
		r.gen = gen // already on disk: announce the generation it is in
	}
	if f := r.commit(ctx, set, ps, reason, installNew); f != nil {
		r.fail(f.reason, f.err, time.Now())
	}
	return false
}

func (r *runner) readGeneration(gen int) (install.Set, error) {
	in, ok := r.store.(*install.Installer)
	if !ok {
		return install.Set{}, errors.New("no generations")
	}
	return in.ReadGeneration(gen)
}

// restoreIfStillInvalid puts the last valid set back when a replacement
// stayed invalid for the whole grace period.
func (r *runner) restoreIfStillInvalid(ctx context.Context) {
	if r.external(ctx) {
		if r.leaf == nil {
			r.log.Error("the replacement is still invalid and there is no valid set to put back")
			return
		}
		if _, ok := r.store.(followedFiles); ok {
			r.log.Error("the replacement is still invalid; another tool owns these files, so sensu-tlsd leaves them and announces nothing")
			return
		}
		unlock, err := r.lock()
		if err != nil {
			r.log.Error("cannot lock the certificate's state directory", "error", err)
			return
		}
		defer unlock()
		gen, err := r.store.Install(r.known)
		if err != nil {
			r.log.Error("putting the last valid set back", "error", err)
			return
		}
		r.gen, r.state.Generation = gen, gen
		r.refreshWatch()
		r.saveState()
		r.log.Warn("invalid replacement undone: the last valid set is back", "serial", r.state.Serial, "generation", gen)
	}
}

// changedFiles lists the configured paths whose bytes differ.
func changedFiles(old, cur install.Set, p install.Paths) []string {
	var out []string
	if !bytes.Equal(old.Cert, cur.Cert) {
		out = append(out, p.Cert)
	}
	if !bytes.Equal(old.Key, cur.Key) {
		out = append(out, p.Key)
	}
	if !bytes.Equal(old.CA, cur.CA) {
		out = append(out, p.CA)
	}
	return out
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
