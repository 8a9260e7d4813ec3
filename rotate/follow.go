package rotate

import (
	"context"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/internal/certstate"
	"github.com/sensu-tlsd/sensu-tlsd/internal/event"
	"github.com/sensu-tlsd/sensu-tlsd/internal/pki"
)

// externalGrace is how long an invalid replacement may stay on disk before
// the last valid set is put back: a tool replacing cert and key with two
// separate renames is briefly inconsistent and must not be undone mid-way.
const externalGrace = time.Second

// external handles a change on disk that the runner did not make. It
// returns true when the new content is invalid and the grace period for
// the replacement to become whole starts.
func (r *runner) external(ctx context.Context) bool {
	// Under the lock, an install by another sensu-tlsd process (renew) is
	// read whole, never half done.
	unlock, err := r.lock()
	if err != nil {
		r.log.Error("cannot lock the certificate's state directory", "error", err)
		return false
	}
	defer unlock()
	return r.follow(ctx)
}

// follow is external under the certificate's lock, which the caller holds.
func (r *runner) follow(ctx context.Context) (invalid bool) {
	set, err := r.store.ReadConfigured()
	if err == nil && set.Equal(r.known) {
		return false // our own install, or a rewrite with the same bytes
	}
	var ps *pki.Set
	if err == nil {
		ps, err = validate(set, r.plan, r.now())
	}
	if err == nil {
		err = r.refusedAgain(ps.Leaf())
	}
	if err != nil {
		r.state.LastError, r.state.LastErrorAt, r.state.Reason = "replacement rejected: "+err.Error(), r.now(), certstate.FailExternal
		r.m.metrics.failures.WithLabelValues(r.plan.Name, certstate.FailExternal).Inc()
		r.log.Warn("replacement on disk rejected; the last valid set is put back unless it becomes valid within the grace period",
			"error", err, "grace", externalGrace.String())
		r.saveState()
		return true
	}
	// Installed by another sensu-tlsd process (renew) when the configured
	// paths read exactly the current generation; otherwise adopt the
	// replacement as a new generation so rollback has something to go to.
	// Files another tool owns are never installed: they are announced as
	// they are.
	gen, _ := r.store.Current()
	reason, place := event.ReasonExternal, installSet
	if gen != r.gen && gen != 0 {
		if g, err := r.store.ReadGeneration(gen); err == nil && g.Equal(set) {
			reason, place = event.ReasonRenewal, alreadyInPlace
		}
	}
	if !r.store.Owned() {
		place = alreadyInPlace
	}
	if place == alreadyInPlace {
		r.gen = gen // already on disk: announce the generation it is in
	}
	if f := r.commit(ctx, set, ps, reason, place); f != nil {
		r.fail(f.reason, f.err)
	}
	return false
}

// restoreIfStillInvalid puts the last valid set back when a replacement
// stayed invalid for the whole grace period. One lock covers the check and
// the reinstall, so a set `renew` installs meanwhile is never overwritten.
func (r *runner) restoreIfStillInvalid(ctx context.Context) {
	unlock, err := r.lock()
	if err != nil {
		r.log.Error("cannot lock the certificate's state directory", "error", err)
		return
	}
	defer unlock()
	if !r.follow(ctx) {
		return
	}
	if r.leaf == nil {
		r.log.Error("the replacement is still invalid and there is no valid set to put back")
		return
	}
	if !r.store.Owned() {
		r.log.Error("the replacement is still invalid; another tool owns these files, so sensu-tlsd leaves them and announces nothing")
		return
	}
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
