package proxy

import (
	"log/slog"
	"sync"
	"time"
)

// refusalLogInterval is the least time between two log lines about
// refused client certificates on one listener: a fleet of agents with a
// stale certificate retrying would otherwise flood the journal.
const refusalLogInterval = 10 * time.Second

// refusalLog logs the client certificates an mTLS listener refuses, with
// the reason, at most once per refusalLogInterval; the line says how many
// refusals since the previous one went unlogged. The metric
// (handshake failures by reason) counts every one.
type refusalLog struct {
	mu         sync.Mutex
	last       time.Time
	suppressed int
}

// mTLSRefusals are the handshake reasons that are a client certificate
// refused: what an operator rotating a client CA or allow-list must see.
var mTLSRefusals = map[string]bool{
	"no-client-certificate":  true,
	"bad-client-certificate": true,
	"client-not-allowed":     true,
}

// refused logs a refused client, unless one was logged within the
// interval.
func (r *refusalLog) refused(log *slog.Logger, listener, remote, reason string, err error, now time.Time) {
	r.mu.Lock()
	if !r.last.IsZero() && now.Sub(r.last) < refusalLogInterval {
		r.suppressed++
		r.mu.Unlock()
		return
	}
	suppressed := r.suppressed
	r.last, r.suppressed = now, 0
	r.mu.Unlock()
	log.Warn("proxy refused a client certificate (mTLS)", "listener", listener, "remote", remote, "reason", reason, "error", err,
		"unlogged_since_last", suppressed)
}
