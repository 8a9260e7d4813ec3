package rotate

import (
	"context"
	"fmt"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/internal/pki"
)

// Result is what one renewal attempt did, for `sensu-tlsd renew`.
type Result struct {
	Name       string
	Skipped    string // why nothing was done (not due), "" otherwise
	DryRun     bool
	Serial     string
	NotAfter   time.Time
	Generation int
}

// RenewOptions are how RenewOnce renews.
type RenewOptions struct {
	// Force renews a set that is not due yet, and forgets the serial
	// consumers rejected: the operator asks for a new certificate now.
	Force bool
	// DryRun issues and validates a candidate but installs and announces
	// nothing.
	DryRun bool
}

// RenewOnce renews one certificate now, outside the daemon: when it is due
// (or o.Force), issue, validate and, unless o.DryRun, install and publish.
// It holds the certificate's lock from load to commit, as the daemon's
// attempts do, so a running daemon's runner waits instead of recovering or
// installing over it, and then sees the new generation.
func (m *Manager) RenewOnce(ctx context.Context, p Plan, o RenewOptions) (Result, error) {
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
	res := Result{Name: p.Name, DryRun: o.DryRun}
	if due := r.dueAt(); !o.Force && r.leaf != nil && r.now().Before(due) {
		rejected := ""
		if s := r.state.RejectedSerial; s != "" {
			rejected = fmt.Sprintf("; consumers rejected serial %s, which is not installed again", s)
		}
		res.Skipped = fmt.Sprintf("not due: serial %s expires %s, renewal from %s%s (use --force to renew anyway)",
			pki.SerialHex(r.leaf), r.leaf.NotAfter.Format(time.RFC3339), due.Format(time.RFC3339), rejected)
		return res, nil
	}
	if o.Force {
		r.clearRejection()
	}
	set, ps, f := r.candidate(ctx)
	if f != nil {
		r.fail(f.reason, f.err)
		return res, f.err
	}
	res.Serial, res.NotAfter = pki.SerialHex(ps.Leaf()), ps.Leaf().NotAfter
	if o.DryRun {
		return res, nil
	}
	reason := r.issueReason()
	if ferr := r.commit(ctx, set, ps, reason, installSet); ferr != nil {
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
