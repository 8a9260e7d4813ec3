package rotate

import (
	"context"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/internal/certstate"
	"github.com/sensu-tlsd/sensu-tlsd/internal/event"
	"github.com/sensu-tlsd/sensu-tlsd/rotate/install"
)

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
	published := r.now()
	if err := r.m.bus.Publish(ctx, change); err != nil {
		if ctx.Err() != nil {
			return
		}
		r.state.LastError, r.state.LastErrorAt, r.state.Reason = "consumers could not take the moved certificate: "+err.Error()+"; "+moveAdvice, r.now(), certstate.FailConsumer
		r.saveState()
		r.log.Error("consumers could not take the certificate at its new paths; "+moveAdvice, "error", err)
		return
	}
	r.recordPaths()
	r.saveState()
	r.log.Info("consumers took the certificate", "new_serial", change.NewSerial, "generation", r.gen, "took", r.now().Sub(published).Round(time.Millisecond).String())
}

// moveAdvice is true because a move is recorded only once consumers took it.
const moveAdvice = "once the service is fixed, restart sensu-tlsd: the move is announced again at start"
