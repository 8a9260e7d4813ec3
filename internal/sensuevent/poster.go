package sensuevent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Post failure reasons, the `reason` label of
// sensu_tlsd_event_post_failures_total.
const (
	FailConnect = "connect" // no answer: the agent is down, or the URL is wrong
	FailStatus  = "status"  // the agent answered with an error status
)

// retryAfter is how long a failed delivery waits before the next try.
const retryAfter = 30 * time.Second

// Target is where events go and how long one post may take.
type Target struct {
	URL     string
	Timeout time.Duration
}

// Poster delivers events to the agent events API from its own goroutine
// (Run); Send only records the event.
type Poster struct {
	log      *slog.Logger
	failures *prometheus.CounterVec
	posted   prometheus.Counter
	wake     chan struct{}

	mu      sync.Mutex
	target  Target
	pending map[string]Event // by check name: the newest undelivered status
}

// NewPoster returns a Poster that registers its counters on reg.
func NewPoster(reg prometheus.Registerer, log *slog.Logger) (*Poster, error) {
	p := &Poster{
		log: log,
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sensu_tlsd_event_post_failures_total",
			Help: "Posts of the daemon's Sensu events to the agent events API that failed, by reason (connect, status); they are retried with the latest status.",
		}, []string{"reason"}),
		posted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sensu_tlsd_events_posted_total",
			Help: "Sensu events the agent events API accepted.",
		}),
		wake:    make(chan struct{}, 1),
		pending: map[string]Event{},
	}
	if err := reg.Register(p.failures); err != nil {
		return nil, err
	}
	if err := reg.Register(p.posted); err != nil {
		return nil, err
	}
	return p, nil
}

// SetTarget changes where the next posts go.
func (p *Poster) SetTarget(t Target) {
	p.mu.Lock()
	p.target = t
	p.mu.Unlock()
}

// Send queues e for delivery, replacing an undelivered event of the same
// check. It never blocks.
func (p *Poster) Send(e Event) {
	p.mu.Lock()
	p.pending[e.Check.Metadata.Name] = e
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Run delivers queued events until ctx ends. After a failed post it waits
// retryAfter, or for a newer event, before trying again.
func (p *Poster) Run(ctx context.Context) error {
	var retry <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-p.wake:
		case <-retry:
		}
		retry = nil
		if !p.deliver(ctx) {
			retry = time.After(retryAfter)
		}
	}
}

// deliver posts every pending event once and reports whether all went
// through. A delivered event leaves the queue unless a newer one of its
// check arrived meanwhile.
func (p *Poster) deliver(ctx context.Context) bool {
	p.mu.Lock()
	batch := make([]Event, 0, len(p.pending))
	for _, e := range p.pending {
		batch = append(batch, e)
	}
	target := p.target
	p.mu.Unlock()
	ok := true
	for _, e := range batch {
		err := Post(ctx, target, e)
		if ctx.Err() != nil {
			return true
		}
		name := e.Check.Metadata.Name
		if err != nil {
			ok = false
			var se statusError
			reason := FailConnect
			if errors.As(err, &se) {
				reason = FailStatus
			}
			p.failures.WithLabelValues(reason).Inc()
			p.log.Warn("posting a Sensu event to the agent failed; it is retried with the latest status", "check", name,
				"status", e.Check.Status, "url", target.URL, "retry_in", retryAfter.String(), "error", err)
			continue
		}
		p.posted.Inc()
		p.log.Info("Sensu event posted", "check", name, "status", e.Check.Status)
		p.mu.Lock()
		if cur, found := p.pending[name]; found && cur.Check == e.Check {
			delete(p.pending, name)
		}
		p.mu.Unlock()
	}
	return ok
}

// statusError is an answer from the agent that refused the event.
type statusError struct {
	code int
	body string
}

func (e statusError) Error() string {
	return fmt.Sprintf("the agent answered %d: %s", e.code, e.body)
}

// Post sends e to t once and waits for the answer, for a command that
// posts one event and exits (migrate apply).
func Post(ctx context.Context, t Target, e Event) error {
	body, err := json.Marshal(e)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, t.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return statusError{resp.StatusCode, string(bytes.TrimSpace(msg))}
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	return nil
}
