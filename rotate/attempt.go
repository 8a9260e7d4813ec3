package rotate

import (
	"bytes"
	"context"
	"crypto/x509"
	"fmt"
	"os"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/internal/certstate"
	"github.com/sensu-tlsd/sensu-tlsd/internal/event"
	"github.com/sensu-tlsd/sensu-tlsd/internal/pki"
	"github.com/sensu-tlsd/sensu-tlsd/rotate/install"
)

// attempt is one scheduled renewal (or first issue).
func (r *runner) attempt(ctx context.Context) {
	unlock, err := r.lock()
	if err != nil {
		r.fail(certstate.FailInstall, err)
		return
	}
	defer unlock()
	set, ps, f := r.candidate(ctx)
	if f != nil {
		r.fail(f.reason, f.err)
		return
	}
	reason := r.issueReason()
	if f := r.commit(ctx, set, ps, reason, installSet); f != nil {
		r.fail(f.reason, f.err)
	}
}

// issueReason is why the set an attempt installs replaces what was there.
func (r *runner) issueReason() event.Reason {
	switch {
	case r.leaf != nil:
		return event.ReasonRenewal
	case r.foundUnfit:
		return event.ReasonReissue
	}
	return event.ReasonInitial
}

// candidate asks the issuer for a set and validates it.
func (r *runner) candidate(ctx context.Context) (install.Set, *pki.Set, *failure) {
	stage, err := os.MkdirTemp(r.plan.Dir, ".tmp-stage-")
	if err != nil {
		return install.Set{}, nil, &failure{certstate.FailIssue, err}
	}
	defer os.RemoveAll(stage)
	set, err := r.issuer.Issue(ctx, r.plan, stage, r.log)
	if err != nil {
		return set, nil, &failure{certstate.FailIssue, err}
	}
	ps, err := validate(set, r.plan, r.now())
	if err != nil {
		return set, nil, &failure{certstate.FailValidate, fmt.Errorf("candidate rejected, the installed set stays: %w", err)}
	}
	if r.leaf != nil && pki.SerialHex(ps.Leaf()) == pki.SerialHex(r.leaf) {
		return set, nil, &failure{certstate.FailIssue, fmt.Errorf("the issuer returned the certificate already installed (serial %s); whatever renews %s has not run", pki.SerialHex(r.leaf), r.plan.Paths.Cert)}
	}
	if err := r.refusedAgain(ps.Leaf()); err != nil {
		return set, nil, &failure{certstate.FailValidate, fmt.Errorf("issuer: %w", err)}
	}
	return set, ps, nil
}

// placement is whether commit installs a set or finds it on disk already
// (installed by `renew`, or files another tool owns).
type placement int

const (
	installSet placement = iota
	alreadyInPlace
)

// commit installs a validated set (unless it is already in place) and
// announces it. If a consumer rejects it, the previous set goes back (see
// rejected); if the daemon is shutting down meanwhile, nothing goes back.
func (r *runner) commit(ctx context.Context, set install.Set, ps *pki.Set, reason event.Reason, place placement) *failure {
	r.keepKeyModes()
	prev, prevLeaf := r.known, r.leaf
	oldSet, oldSerial := r.found, r.foundSerial
	if r.leaf != nil {
		oldSet, oldSerial = r.known, pki.SerialHex(r.leaf)
	}
	gen := r.gen
	if place == installSet {
		var err error
		if gen, err = r.store.Install(set); err != nil {
			return &failure{certstate.FailInstall, err}
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
	published := r.now()
	if err := r.m.bus.Publish(ctx, change); err != nil {
		if ctx.Err() != nil {
			r.interrupted(change, err)
			return nil
		}
		return r.rejected(ctx, change, prev, prevLeaf, err)
	}
	now := r.now()
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
	now := r.now()
	r.state.Renewals++
	r.state.LastError = fmt.Sprintf("stopped (shutdown or reload) before consumers confirmed serial %s (generation %d); it stays installed, not rolled back: %v", c.NewSerial, c.Generation, err)
	r.state.LastErrorAt, r.state.Reason = now, interruptedReason
	r.recordPaths() // consumers were being told c's paths
	r.log.Warn("stopped while consumers were taking the new certificate; it stays installed, not rolled back",
		"serial", c.NewSerial, "generation", c.Generation, "error", err)
	r.schedule(r.renewalOf(r.leaf, now))
}

// fail records a failed attempt and backs off; it never retries at once.
// After a consumer's refusal the backoff holds even in an emergency: every
// attempt restarts the services twice (new set, then rollback), and
// retrying faster does not make a service accept a set.
func (r *runner) fail(reason string, err error) {
	now := r.now()
	r.state.Failures++
	r.state.LastError, r.state.LastErrorAt, r.state.Reason = err.Error(), now, reason
	r.m.metrics.failures.WithLabelValues(r.plan.Name, reason).Inc()
	var notAfter time.Time
	if r.leaf != nil {
		notAfter = r.leaf.NotAfter
	}
	delay := r.plan.RetryAfter(r.state.Failures, notAfter, now)
	next := now.Add(delay)
	if reason == certstate.FailConsumer {
		delay = r.plan.backoff(r.state.Failures)
		next = later(now.Add(delay), r.keptUntil(r.state.RejectedSerial))
	}
	r.log.Error("renewal failed", "reason", reason, "error", err, "failures", r.state.Failures,
		"emergency", r.plan.inEmergency(notAfter, now), "retry_in", delay.String(), "next_attempt", next.Format(time.RFC3339))
	r.schedule(next)
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
