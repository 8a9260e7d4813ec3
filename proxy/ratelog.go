package proxy

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// rateLog writes at most one line per interval and counts the lines it
// held back, which the next line reports (unlogged_since_last). Refusals come from clients
// before any authentication, so one misbehaving agent reconnecting in a
// loop must not be able to flood the journal.
type rateLog struct {
	every time.Duration

	mu         sync.Mutex
	next       time.Time
	suppressed int
}

// log writes msg at level unless a line went out less than every ago.
func (r *rateLog) log(l *slog.Logger, level slog.Level, now time.Time, msg string, args ...any) {
	r.mu.Lock()
	if now.Before(r.next) {
		r.suppressed++
		r.mu.Unlock()
		return
	}
	r.next = now.Add(r.every)
	suppressed := r.suppressed
	r.suppressed = 0
	r.mu.Unlock()
	l.Log(context.Background(), level, msg, append(args, "unlogged_since_last", suppressed)...)
}
