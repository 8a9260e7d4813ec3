package rotate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sensu-tlsd/sensu-tlsd/internal/certstate"
	"github.com/sensu-tlsd/sensu-tlsd/internal/event"
	"github.com/sensu-tlsd/sensu-tlsd/internal/pki"
	"github.com/sensu-tlsd/sensu-tlsd/rotate/ca"
)

// refuseReasons makes rec refuse every change with one of reasons.
func refuseReasons(rec *recorder, reasons ...event.Reason) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rec.refuse = func(c event.Change) error {
		for _, r := range reasons {
			if c.Reason == r {
				return fmt.Errorf("sensu-backend did not come back on serial %s", c.NewSerial)
			}
		}
		return nil
	}
}

// operatorSet is a cert and key an operator issued from the plan's CA.
type operatorSet struct {
	serial    string
	cert, key []byte
}

func issueOperatorSet(t *testing.T, p Plan) operatorSet {
	t.Helper()
	files := issueFromCA(t, p.CADir, p, t.TempDir())
	certs, err := pki.ReadCertificates(files.Cert)
	if err != nil {
		t.Fatal(err)
	}
	o := operatorSet{serial: pki.SerialHex(certs[0])}
	if o.cert, err = os.ReadFile(files.Cert); err != nil {
		t.Fatal(err)
	}
	if o.key, err = os.ReadFile(files.Key); err != nil {
		t.Fatal(err)
	}
	return o
}

// moveIn renames o over the configured key, then the cert, as an operator
// would with mv.
func (o operatorSet) moveIn(t *testing.T, p Plan) {
	t.Helper()
	for _, f := range []struct {
		path string
		data []byte
	}{{p.Paths.Key, o.key}, {p.Paths.Cert, o.cert}} {
		tmp := f.path + ".new"
		if err := os.WriteFile(tmp, f.data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, f.path); err != nil {
			t.Fatal(err)
		}
	}
}

func onDisk(t *testing.T, p Plan) string {
	t.Helper()
	return pki.SerialHex(readValid(t, p).Leaf())
}

// TestRejectedExternalSetIsNotFollowedByAnUnaskedRenewal: consumers refuse
// an operator's certificate. The previous set goes back, and then nothing
// is issued (the restored set is not due): an operator's own certificate
// is not replaced by one from the local CA, and the services are not
// restarted again. The refused serial is never installed again until a
// reload forgets it.
func TestRejectedExternalSetIsNotFollowedByAnUnaskedRenewal(t *testing.T) {
	cfg := testConfig(t, time.Hour, "")
	rec := newRecorder()
	refuseReasons(rec, event.ReasonExternal)
	m, plans := startManager(t, cfg, rec)
	p := plans[0]
	first := rec.next(t, 10*time.Second)

	bad := issueOperatorSet(t, p)
	bad.moveIn(t, p)
	ext := rec.next(t, 2*time.Second)
	back := rec.next(t, 2*time.Second)
	if ext.NewSerial != bad.serial || back.Reason != event.ReasonRollback || back.NewSerial != first.NewSerial {
		t.Fatalf("rollback sequence: %+v then %+v", ext, back)
	}
	s := waitState(t, cfg.StateDir, p.Name, func(s certstate.State) bool { return s.RejectedSerial != "" })
	// retry-min is 1s and retry-max 2s: a renewal after backoff would
	// come within ten minutes.
	clockOf(m).skip(10 * time.Minute)
	rec.none(t, 300*time.Millisecond)
	if got := onDisk(t, p); got != first.NewSerial {
		t.Fatalf("after the rollback the files hold %s, want %s", got, first.NewSerial)
	}
	if s.RejectedSerial != bad.serial || s.Reason != certstate.FailConsumer || s.Failures != 1 || !strings.Contains(s.LastError, "rejected serial "+bad.serial) ||
		!strings.Contains(s.LastError, "reload sensu-tlsd (SIGHUP) and put the certificate in place again") || time.Until(s.NextRenewal) < 30*time.Minute {
		t.Fatalf("state after the rejection: %+v", s)
	}
	if g := testutil.ToFloat64(m.metrics.rejected.WithLabelValues(p.Name)); g != 1 {
		t.Fatalf("consumer_rejected gauge %v, want 1", g)
	}
	if n := testutil.ToFloat64(m.metrics.failures.WithLabelValues(p.Name, certstate.FailConsumer)); n != 1 {
		t.Fatalf("consumer failures counted %v, want 1", n)
	}

	// The operator moves the same certificate in again, and now consumers
	// would take it: it is refused before any of them sees it, and the
	// last valid set is put back.
	rec.mu.Lock()
	rec.refuse = nil
	rec.mu.Unlock()
	bad.moveIn(t, p)
	refusedAgain := func(s certstate.State) bool {
		return s.Reason == certstate.FailExternal && strings.Contains(s.LastError, "serial "+bad.serial+" was rejected by consumers")
	}
	s = waitState(t, cfg.StateDir, p.Name, refusedAgain)
	clockOf(m).skip(2 * externalGrace)
	waitOnDisk(t, p, first.NewSerial)
	rec.none(t, 200*time.Millisecond)
	s = waitState(t, cfg.StateDir, p.Name, refusedAgain)
	if !strings.Contains(s.LastError, "serial "+bad.serial+" was rejected by consumers") || !strings.Contains(s.LastError, "reload sensu-tlsd (SIGHUP) to allow it") {
		t.Fatalf("state does not say why the replacement was refused and what allows it: %+v", s)
	}

	// A reload is the operator's word: the serial may come back, and the
	// refusal leaves no failure behind (check would warn on one).
	if err := m.Apply(plans); err != nil {
		t.Fatal(err)
	}
	s = waitState(t, cfg.StateDir, p.Name, func(s certstate.State) bool { return s.RejectedSerial == "" })
	if s.RejectedSerial != "" || s.Failures != 0 || s.Reason != "" || s.LastError != "" || time.Until(s.NextRenewal) < 30*time.Minute {
		t.Fatalf("state after a reload forgot the rejected serial: %+v, want no failure and the renewal on schedule", s)
	}
	bad.moveIn(t, p)
	if c := rec.next(t, 2*time.Second); c.Reason != event.ReasonExternal || c.NewSerial != bad.serial {
		t.Fatalf("after a reload the operator's certificate was not followed: %+v", c)
	}
	if g := testutil.ToFloat64(m.metrics.rejected.WithLabelValues(p.Name)); g != 0 {
		t.Fatalf("consumer_rejected gauge %v after the set was accepted, want 0", g)
	}
}

// TestRenewForceFromAnotherProcessEndsTheDaemonsRefusal is the advice a
// refused renewal gives: `renew NAME --force` (another process, with its
// own copy of the state) issues a new serial, the running daemon sees the
// new generation, announces it and, once consumers take it, forgets the
// refusal it holds in memory.
func TestRenewForceFromAnotherProcessEndsTheDaemonsRefusal(t *testing.T) {
	cfg := testConfig(t, 30*time.Second, "28s")
	cfg.Renewal.RetryMin, cfg.Renewal.RetryMax = time.Hour, time.Hour
	rec := newRecorder()
	var refusedOnce sync.Once
	rec.refuse = func(c event.Change) error {
		var err error
		if c.Reason == event.ReasonRenewal {
			refusedOnce.Do(func() { err = errors.New("sensu-backend did not come back") })
		}
		return err
	}
	m, plans := startManager(t, cfg, rec)
	first := rec.next(t, 10*time.Second)
	skipToRenewal(t, m, cfg.StateDir, "backend-1", func(s certstate.State) bool { return s.Renewals == 1 })
	bad := rec.next(t, 10*time.Second)
	if back := rec.next(t, 2*time.Second); bad.Reason != event.ReasonRenewal || back.Reason != event.ReasonRollback || back.NewSerial != first.NewSerial {
		t.Fatalf("rollback sequence: %+v then %+v", bad, back)
	}
	s := waitState(t, cfg.StateDir, "backend-1", func(s certstate.State) bool { return s.RejectedSerial != "" })
	if want := "sensu-tlsd renew backend-1 --force issues a new certificate now"; !strings.Contains(s.LastError, want) {
		t.Fatalf("the refusal does not advise %q: %+v", want, s)
	}

	cli := NewManager(&event.Bus{}, NewMetrics(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	res, err := cli.RenewOnce(context.Background(), plans[0], RenewOptions{Force: true})
	if err != nil {
		t.Fatal(err)
	}
	if c := rec.next(t, 5*time.Second); c.NewSerial != res.Serial || c.Reason != event.ReasonRenewal {
		t.Fatalf("the daemon announced %+v, want the forced renewal %s", c, res.Serial)
	}
	// The gauge is the daemon's own: state.json was already rewritten by
	// the other process.
	rejected := func() float64 { return testutil.ToFloat64(m.metrics.rejected.WithLabelValues("backend-1")) }
	for deadline := time.Now().Add(2 * time.Second); rejected() != 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if g := rejected(); g != 0 {
		t.Fatalf("consumer_rejected gauge %v after the forced renewal was taken, want 0", g)
	}
	s = waitState(t, cfg.StateDir, "backend-1", func(s certstate.State) bool { return s.Serial == res.Serial && s.RejectedSerial == "" })
	if s.Serial != res.Serial || s.RejectedSerial != "" || s.Failures != 0 || s.Reason != "" {
		t.Fatalf("the daemon's state after the forced renewal was taken: %+v", s)
	}
}

// TestRefusedFollowedFilesWaitForTheToolThatOwnsThem: for issuer files,
// sensu-tlsd cannot roll back or issue anything, so after a refusal (and
// after a reload forgets it) the files stay until they are due and the
// advice names the tool that writes them, with no attempt failing meanwhile
// on "the issuer returned the certificate already installed".
func TestRefusedFollowedFilesWaitForTheToolThatOwnsThem(t *testing.T) {
	cfg := testConfig(t, time.Hour, "")
	cfg.Certificates[0].Issuer.Type = "files"
	p := mustPlans(t, cfg)[0]
	if _, err := ca.Init(p.CADir, testCAOptions); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Dir(p.Paths.Cert), 0o755)
	issueFromCA(t, p.CADir, p, filepath.Dir(p.Paths.Cert))
	rec := newRecorder()
	refuseReasons(rec, event.ReasonExternal)
	m, plans := startManager(t, cfg, rec)
	bad := issueOperatorSet(t, p)
	bad.moveIn(t, p)
	if c := rec.next(t, 2*time.Second); c.NewSerial != bad.serial {
		t.Fatalf("the tool's new set was not followed: %+v", c)
	}
	s := waitState(t, cfg.StateDir, p.Name, func(s certstate.State) bool { return s.RejectedSerial != "" })
	if s.RejectedSerial != bad.serial || s.Failures != 1 || !strings.Contains(s.LastError, "have the tool that writes "+p.Paths.Cert+" put a new set in place") ||
		time.Until(s.NextRenewal) < 30*time.Minute {
		t.Fatalf("state after consumers refused followed files: %+v", s)
	}
	if err := m.Apply(plans); err != nil {
		t.Fatal(err)
	}
	forgotten := func(s certstate.State) bool { return s.RejectedSerial == "" }
	waitState(t, cfg.StateDir, p.Name, forgotten)
	clockOf(m).skip(10 * time.Minute) // retry-min 1s: an attempt would have failed by now
	rec.none(t, 300*time.Millisecond)
	s = waitState(t, cfg.StateDir, p.Name, forgotten)
	if s.RejectedSerial != "" || s.Failures != 0 || s.LastError != "" || time.Until(s.NextRenewal) < 30*time.Minute {
		t.Fatalf("state after a reload forgot the refusal of followed files: %+v", s)
	}
}

// TestRejectedRenewalsBackOffAndRollBackToTheAcceptedSet: consumers refuse
// every renewal. Each refusal puts the accepted set back, never an earlier
// refused one, and the attempts back off exponentially.
func TestRejectedRenewalsBackOffAndRollBackToTheAcceptedSet(t *testing.T) {
	cfg := testConfig(t, 30*time.Second, "28s")
	cfg.Renewal.RetryMin, cfg.Renewal.RetryMax = 200*time.Millisecond, 800*time.Millisecond
	rec := newRecorder()
	refuseReasons(rec, event.ReasonRenewal)
	m, plans := startManager(t, cfg, rec)
	first := rec.next(t, 10*time.Second)
	skipToRenewal(t, m, cfg.StateDir, "backend-1", func(s certstate.State) bool { return s.Renewals == 1 })
	refused := map[string]bool{}
	for i, want := range []time.Duration{200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, 800 * time.Millisecond} {
		bad := rec.next(t, 10*time.Second)
		back := rec.next(t, 2*time.Second)
		if bad.Reason != event.ReasonRenewal || refused[bad.NewSerial] || back.Reason != event.ReasonRollback || back.NewSerial != first.NewSerial {
			t.Fatalf("attempt %d: %+v then %+v, want a new serial refused and %s back", i+1, bad, back, first.NewSerial)
		}
		refused[bad.NewSerial] = true
		s := waitState(t, cfg.StateDir, "backend-1", func(s certstate.State) bool { return s.Failures == i+1 })
		if got := s.NextRenewal.Sub(s.LastErrorAt); s.Failures != i+1 || s.RejectedSerial != bad.NewSerial || got != want {
			t.Fatalf("attempt %d: next attempt %s after the rejection, want %s: %+v", i+1, got, want, s)
		}
		clockOf(m).skipTo(s.NextRenewal)
	}
	if got := onDisk(t, plans[0]); got != first.NewSerial {
		t.Fatalf("files hold %s, want the accepted %s", got, first.NewSerial)
	}
}

// TestRollbackRefusesAnEarlierSetThatExpired: when the set before a
// refused one has expired meanwhile, it is not put back; the new set stays
// and the state says why.
func TestRollbackRefusesAnEarlierSetThatExpired(t *testing.T) {
	cfg := testConfig(t, 3*time.Second, "1s")
	cfg.Renewal.RetryMin, cfg.Renewal.RetryMax = time.Hour, time.Hour
	rec := newRecorder()
	clk := newSkipClock()
	var firstExpiry time.Time
	rec.refuse = func(c event.Change) error {
		if c.Reason != event.ReasonRenewal {
			firstExpiry = c.NotAfter
			return nil
		}
		clk.skipTo(firstExpiry.Add(100 * time.Millisecond)) // the restart takes until the first set expired
		return errors.New("sensu-backend did not come back")
	}
	m, plans := startManagerWith(t, cfg, rec, clk)
	rec.next(t, 10*time.Second)
	skipToRenewal(t, m, cfg.StateDir, "backend-1", func(s certstate.State) bool { return s.Renewals == 1 })
	bad := rec.next(t, 10*time.Second)
	rec.none(t, 200*time.Millisecond)
	if got := onDisk(t, plans[0]); got != bad.NewSerial {
		t.Fatalf("files hold %s, want the refused %s to stay (the earlier set expired)", got, bad.NewSerial)
	}
	s := waitState(t, cfg.StateDir, "backend-1", func(s certstate.State) bool { return s.Failures > 0 })
	if s.Reason != certstate.FailConsumer || s.RejectedSerial != bad.NewSerial || !strings.Contains(s.LastError, "no longer valid") || !strings.Contains(s.LastError, "stays installed") {
		t.Fatalf("state after a refusal with nothing valid to go back to: %+v", s)
	}
}

// TestRollbackRestoresTheSetEvenWhenItsGenerationWasOverwritten: a cp
// through the configured links writes the new set into the current
// generation's files. When consumers refuse it, the accepted bytes come
// back, not what that generation directory holds now.
func TestRollbackRestoresTheSetEvenWhenItsGenerationWasOverwritten(t *testing.T) {
	cfg := testConfig(t, time.Hour, "")
	rec := newRecorder()
	refuseReasons(rec, event.ReasonExternal)
	_, plans := startManager(t, cfg, rec)
	p := plans[0]
	first := rec.next(t, 10*time.Second)
	bad := issueOperatorSet(t, p)
	for _, f := range []struct {
		path string
		data []byte
	}{{p.Paths.Key, bad.key}, {p.Paths.Cert, bad.cert}} {
		if err := os.WriteFile(f.path, f.data, 0o600); err != nil { // follows the link, like cp
			t.Fatal(err)
		}
	}
	if c := rec.next(t, 3*time.Second); c.NewSerial != bad.serial {
		t.Fatalf("the copied set was not followed: %+v", c)
	}
	back := rec.next(t, 2*time.Second)
	if back.Reason != event.ReasonRollback || back.NewSerial != first.NewSerial {
		t.Fatalf("rollback: %+v, want serial %s back", back, first.NewSerial)
	}
	if got := onDisk(t, p); got != first.NewSerial {
		t.Fatalf("after the rollback the files hold %s, want %s", got, first.NewSerial)
	}
}

// TestShutdownWhileConsumersWaitDoesNotRollBack: the daemon stopping while
// a service restarts on a new set is not the service refusing it. The new
// set stays (the service may already serve it) and the state records the
// interruption.
func TestShutdownWhileConsumersWaitDoesNotRollBack(t *testing.T) {
	cfg := testConfig(t, 30*time.Second, "28s")
	plans, err := resolve(cfg)
	if err != nil {
		t.Fatal(err)
	}
	waiting := make(chan event.Change, 1)
	var mu sync.Mutex
	var seen []event.Change
	bus := &event.Bus{}
	bus.Subscribe(event.SubscriberFunc(func(ctx context.Context, c event.Change) error {
		mu.Lock()
		seen = append(seen, c)
		mu.Unlock()
		if c.Reason != event.ReasonRenewal {
			return nil
		}
		waiting <- c
		<-ctx.Done()
		return fmt.Errorf("certificate %s: waiting for services: %w", c.Name, ctx.Err())
	}))
	m := NewManager(bus, NewMetrics(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	m.clock = newSkipClock()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx, plans, nil) }()
	skipToRenewal(t, m, cfg.StateDir, "backend-1", func(s certstate.State) bool { return s.Renewals == 1 })
	var renewal event.Change
	select {
	case renewal = <-waiting:
	case <-time.After(15 * time.Second):
		cancel()
		t.Fatal("no renewal reached the consumer")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if last := seen[len(seen)-1]; last.Reason == event.ReasonRollback {
		t.Fatalf("a shutdown was taken for a refusal and rolled back: %+v", last)
	}
	if got := onDisk(t, plans[0]); got != renewal.NewSerial {
		t.Fatalf("files hold %s after the shutdown, want the new %s", got, renewal.NewSerial)
	}
	st, _ := certstate.ReadAll(cfg.StateDir)
	s := st["backend-1"]
	if s.Reason != interruptedReason || s.Failures != 0 || s.RejectedSerial != "" || !strings.Contains(s.LastError, "not rolled back") || s.Serial != renewal.NewSerial {
		t.Fatalf("state after the interrupted renewal: %+v", s)
	}
}

// TestAliveAnswersOnlyWhileTheManagerIsNotWedged: Alive is what the
// systemd watchdog waits for. A reload stuck behind a consumer that
// ignores cancellation holds the manager, and Alive does not return until
// it is free again.
func TestAliveAnswersOnlyWhileTheManagerIsNotWedged(t *testing.T) {
	cfg := testConfig(t, time.Hour, "")
	release := make(chan struct{})
	entered := make(chan struct{})
	m, _ := startManager(t, cfg, event.SubscriberFunc(func(context.Context, event.Change) error {
		close(entered)
		<-release // ignores ctx: a wedged consumer
		return nil
	}))
	alive := func(within time.Duration) bool {
		ok := make(chan struct{})
		go func() { m.Alive(); close(ok) }()
		select {
		case <-ok:
			return true
		case <-time.After(within):
			return false
		}
	}
	if !alive(time.Second) {
		t.Fatal("an idle manager did not answer Alive")
	}
	<-entered
	var releaseOnce sync.Once
	unwedge := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(unwedge) // a failure below must not leave the manager stuck
	applied := make(chan error, 1)
	go func() { applied <- m.Apply(nil) }() // stops the runner: waits for the consumer
	for m.mu.TryLock() {                    // until the reload holds the manager
		m.mu.Unlock()
		time.Sleep(time.Millisecond)
	}
	if alive(500 * time.Millisecond) {
		t.Fatal("Alive answered while a reload was stuck holding the manager")
	}
	unwedge()
	if err := <-applied; err != nil {
		t.Fatal(err)
	}
	if !alive(time.Second) {
		t.Fatal("Alive did not answer once the manager was free again")
	}
}
