package rotate

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/internal/certstate"
	"github.com/sensu-tlsd/sensu-tlsd/internal/event"
	"github.com/sensu-tlsd/sensu-tlsd/internal/pki"
	"github.com/sensu-tlsd/sensu-tlsd/rotate/install"
)

// refusedAgain refuses a set holding the serial consumers rejected, from
// the issuer or put in place by hand alike, until a reload forgets it.
func (r *runner) refusedAgain(leaf *x509.Certificate) error {
	s := pki.SerialHex(leaf)
	if r.state.RejectedSerial == "" || s != r.state.RejectedSerial {
		return nil
	}
	return fmt.Errorf("serial %s was rejected by consumers and is not installed again; once the service is fixed, reload sensu-tlsd (SIGHUP) to allow it", s)
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
		return &failure{certstate.FailConsumer, fmt.Errorf("consumers rejected serial %s, which stays installed because %v: %w; %s", bad.NewSerial, err, cause, r.refusalAdvice(bad.Reason))}
	}
	return &failure{certstate.FailConsumer, fmt.Errorf("consumers rejected serial %s, serial %s is back: %w; %s", bad.NewSerial, r.state.Serial, cause, r.refusalAdvice(bad.Reason))}
}

// refusalAdvice is what moves a certificate on once the service that
// refused a set of it (the change's reason) is fixed. A reload forgets the
// refused serial but issues nothing before the installed set is due, and
// `renew --force` from another process ends the daemon's refusal only by
// installing a new serial, which files another tool owns never get.
func (r *runner) refusalAdvice(reason event.Reason) string {
	if !r.store.Owned() {
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
	ps, err := validate(prev, r.plan, r.now())
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
	next := later(r.now(), r.keptUntil(refused))
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
	if r.leaf == nil || (r.store.Owned() && pki.SerialHex(r.leaf) == refused) {
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
