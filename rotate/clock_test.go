package rotate

import (
	"sync"
	"testing"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/internal/certstate"
)

// skipClock is the system clock that a test moves ahead: time passes as
// usual, and skip jumps it forward, firing every wait the jump ends. A
// wait started after a skip counts from the moved clock, so a test never
// has to catch a runner between two waits; a skip that comes early only
// costs real time.
type skipClock struct {
	mu     sync.Mutex
	offset time.Duration
	waits  map[*skipWait]struct{}
}

type skipWait struct {
	at    time.Time
	c     chan time.Time
	timer *time.Timer
}

func newSkipClock() *skipClock { return &skipClock{waits: map[*skipWait]struct{}{}} }

func (c *skipClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *skipClock) After(d time.Duration) (<-chan time.Time, func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	w := &skipWait{at: time.Now().Add(c.offset + d), c: make(chan time.Time, 1)}
	c.waits[w] = struct{}{}
	w.timer = time.AfterFunc(d, func() { c.fire(w) })
	return w.c, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		w.timer.Stop()
		delete(c.waits, w)
	}
}

func (c *skipClock) fire(w *skipWait) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.waits[w]; ok {
		delete(c.waits, w)
		w.c <- w.at
	}
}

// skip moves the clock d ahead.
func (c *skipClock) skip(d time.Duration) {
	c.mu.Lock()
	c.offset += d
	now := time.Now().Add(c.offset)
	var due []*skipWait
	for w := range c.waits {
		if w.at.After(now) {
			w.timer.Reset(w.at.Sub(now))
		} else {
			due = append(due, w)
		}
	}
	c.mu.Unlock()
	for _, w := range due {
		w.timer.Stop()
		c.fire(w)
	}
}

// skipTo moves the clock ahead to t (not back when t has passed).
func (c *skipClock) skipTo(t time.Time) {
	if d := t.Sub(c.Now()); d > 0 {
		c.skip(d)
	}
}

// clockOf is the skipClock runManager gave m.
func clockOf(m *Manager) *skipClock { return m.clock.(*skipClock) }

// skipToRenewal waits until the state of certificate name satisfies ok
// (the runner has scheduled what comes next) and moves m's clock to the
// next renewal it recorded.
func skipToRenewal(t *testing.T, m *Manager, stateDir, name string, ok func(certstate.State) bool) certstate.State {
	t.Helper()
	s := waitState(t, stateDir, name, ok)
	if !ok(s) {
		t.Fatalf("state of %s never became ready to skip: %+v", name, s)
	}
	clockOf(m).skipTo(s.NextRenewal)
	return s
}

func TestSkipClockFiresWhatTheSkipEndsAndLetsTimePass(t *testing.T) {
	c := newSkipClock()
	long, stopLong := c.After(time.Hour)
	defer stopLong()
	short, _ := c.After(20 * time.Millisecond)
	stopped, stop := c.After(time.Minute)
	stop()
	select {
	case <-short: // real time still passes
	case <-time.After(5 * time.Second):
		t.Fatal("a 20ms wait did not end in real time")
	}
	start := c.Now()
	c.skip(time.Hour)
	select {
	case <-long:
	case <-time.After(5 * time.Second):
		t.Fatal("skipping an hour did not end an hour's wait")
	}
	if got := c.Now().Sub(start); got < time.Hour {
		t.Fatalf("the clock moved %s, want an hour", got)
	}
	select {
	case <-stopped:
		t.Fatal("a stopped wait fired")
	case <-time.After(50 * time.Millisecond):
	}
	after, _ := c.After(time.Minute)
	c.skipTo(c.Now().Add(time.Minute))
	select {
	case <-after:
	case <-time.After(5 * time.Second):
		t.Fatal("skipTo did not end a wait due at its target")
	}
}
