package rotate

import (
	"context"
	"crypto/x509"
	"log/slog"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/internal/certstate"
	"github.com/sensu-tlsd/sensu-tlsd/internal/pki"
	"github.com/sensu-tlsd/sensu-tlsd/rotate/install"
)

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
	// foundUnfit: that set had not expired; it no longer fits its plan
	// (hosts, profile, key), so the set replacing it is a reissue.
	foundUnfit bool
	state      certstate.State
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
	next := r.now()
	if r.leaf != nil {
		next = r.plan.RenewAt(r.leaf)
	}
	r.schedule(next)
	close(loaded)
	if moved {
		r.announceMove(ctx, movedFrom)
	}

	var grace <-chan time.Time
	stopGrace := func() {}
	defer func() { stopGrace() }()
	for {
		wake, stopWake := r.m.clock.After(r.until(r.state.NextRenewal))
		select {
		case <-ctx.Done():
			stopWake()
			return
		case <-r.changed:
			stopGrace()
			grace, stopGrace = nil, func() {}
			if r.external(ctx) {
				grace, stopGrace = r.m.clock.After(externalGrace)
			}
		case <-grace:
			grace, stopGrace = nil, func() {}
			r.restoreIfStillInvalid(ctx)
		case <-r.reset:
			r.forgetRejection()
		case <-wake:
			if !r.now().Before(r.state.NextRenewal) {
				r.attempt(ctx)
			}
		}
		stopWake()
	}
}

// maxSleep bounds one timer wait. Timers run on the monotonic clock, which
// stands still while a machine is suspended; waking at least hourly and
// comparing with the wall clock keeps a renewal from being days late.
const maxSleep = time.Hour

// until is how long the runner sleeps before t, at most maxSleep.
func (r *runner) until(t time.Time) time.Duration { return min(t.Sub(r.now()), maxSleep) }

func (r *runner) now() time.Time { return r.m.clock.Now() }

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
	ps, err := validate(set, r.plan, r.now())
	if err != nil {
		r.found = set
		if chain, perr := pki.ParseCertificatesPEM(set.Cert); perr == nil && len(chain) > 0 {
			r.foundSerial = pki.SerialHex(chain[0])
			r.foundUnfit = r.now().Before(chain[0].NotAfter)
		}
		r.log.Warn("the certificate set on disk is not valid for its plan; issuing a new one", "serial", r.foundSerial, "error", err)
		return
	}
	r.setKnown(set, ps.Leaf(), r.gen)
}

func (r *runner) setKnown(set install.Set, leaf *x509.Certificate, gen int) {
	r.known, r.leaf, r.gen = set, leaf, gen
	r.found, r.foundSerial, r.foundUnfit = install.Set{}, "", false
	r.state.Serial = pki.SerialHex(leaf)
	r.state.NotAfter = leaf.NotAfter
	if w := pki.EmptySANWarning(leaf); w != "" {
		r.log.Warn("the certificate in use has a flaw: "+w, "serial", r.state.Serial, "cert", r.plan.Paths.Cert)
	}
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

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
