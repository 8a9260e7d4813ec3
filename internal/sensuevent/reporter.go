package sensuevent

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/config"
	"github.com/sensu-tlsd/sensu-tlsd/internal/certstate"
	"github.com/sensu-tlsd/sensu-tlsd/internal/inventory"
	"github.com/sensu-tlsd/sensu-tlsd/internal/reload"
	"github.com/sensu-tlsd/sensu-tlsd/internal/watch"
)

// CheckPrefix starts the name of each certificate's check.
const CheckPrefix = "sensu-tlsd-renewal-"

// CutoverCheck is the check of `migrate apply`.
const CutoverCheck = "sensu-tlsd-cutover"

// Reporter turns the state files of the managed certificates into events.
// It is a daemon.Reloader: a reload changes the certificates it follows,
// the target and the handlers.
type Reporter struct {
	poster  *Poster
	watcher *watch.Watcher
	log     *slog.Logger
	now     func() time.Time

	mu        sync.Mutex
	stateDir  string
	enabled   bool
	handlers  []string
	emergency time.Duration
	certs     []string
	sent      map[string]string // certificate → what its last sent event said
}

// NewReporter returns a Reporter that sends through p.
func NewReporter(p *Poster, log *slog.Logger) (*Reporter, error) {
	w, err := watch.New(watch.DefaultDebounce)
	if err != nil {
		return nil, fmt.Errorf("events: starting the file watcher: %w", err)
	}
	return &Reporter{poster: p, watcher: w, log: log, now: time.Now, sent: map[string]string{}}, nil
}

// Prepare resolves cfg's state directory; the returned Pending's Commit
// follows cfg's certificates and events settings. Turning events on (or
// starting with them on) sends every certificate's current status, so a
// recovery that happened while they were off still reaches Sensu.
func (r *Reporter) Prepare(cfg *config.Config) (reload.Pending, error) {
	stateDir, err := filepath.Abs(cfg.StateDir)
	if err != nil {
		return nil, fmt.Errorf("events: state-dir %s: %w", cfg.StateDir, err)
	}
	return pendingFollow{r: r, cfg: cfg, stateDir: stateDir}, nil
}

// pendingFollow is a prepared configuration for the Reporter.
type pendingFollow struct {
	r        *Reporter
	cfg      *config.Config
	stateDir string
}

func (p pendingFollow) Commit(context.Context) error { return p.r.follow(p.cfg, p.stateDir) }

func (pendingFollow) Abort() {}

// follow watches the state files of cfg's certificates when events are on.
func (r *Reporter) follow(cfg *config.Config, stateDir string) error {
	names := make([]string, 0, len(cfg.Certificates))
	for _, c := range cfg.Certificates {
		names = append(names, c.Name)
	}
	r.poster.SetTarget(Target{URL: cfg.Events.AgentAPIURL, Timeout: cfg.Events.Timeout})
	r.mu.Lock()
	for _, old := range r.certs {
		if !slices.Contains(names, old) || stateDir != r.stateDir {
			r.watcher.Remove(old)
			delete(r.sent, old)
		}
	}
	if !r.enabled || !slices.Equal(r.handlers, cfg.Events.Handlers) {
		clear(r.sent)
	}
	r.stateDir, r.enabled, r.handlers, r.emergency, r.certs = stateDir, cfg.Events.Enabled, slices.Clone(cfg.Events.Handlers), cfg.Renewal.Emergency, names
	r.mu.Unlock()
	for _, name := range names {
		if !cfg.Events.Enabled {
			r.watcher.Remove(name) // nothing to send: watch nothing, create nothing
			continue
		}
		// The runner creates this directory too; the watch needs it first.
		dir := filepath.Join(stateDir, "certs", name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("events: %w", err)
		}
		if err := r.watcher.Set(name, []string{filepath.Join(dir, "state.json")}); err != nil {
			return fmt.Errorf("events: watching %s: %w", dir, err)
		}
		r.evaluate(name)
	}
	return nil
}

// Run follows the state files until ctx ends.
func (r *Reporter) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- r.watcher.Run(ctx) }()
	for {
		select {
		case <-ctx.Done():
			return <-errc
		case err := <-errc:
			return fmt.Errorf("events: watching state files: %w", err)
		case name := <-r.watcher.Changes():
			r.evaluate(name)
		}
	}
}

// evaluate sends name's event when what it says changed since the last
// one: its status, or a new failure.
func (r *Reporter) evaluate(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.enabled || !slices.Contains(r.certs, name) {
		return
	}
	states, err := certstate.ReadAll(r.stateDir)
	if err != nil {
		r.log.Warn("events: reading the state files", "error", err)
		return
	}
	st, ok := states[name]
	if !ok {
		return // never attempted yet: nothing to say
	}
	e := CertificateEvent(name, st, r.handlers, r.emergency, r.now())
	if _, said := r.sent[name]; !said && e.Check.Status == StatusOK && st.NotAfter.IsZero() {
		return // first issue still under way: nothing to say yet
	}
	key := fmt.Sprint(e.Check.Status)
	if e.Check.Status != StatusOK {
		key = fmt.Sprintf("%d %s %s %d", e.Check.Status, st.LastErrorAt.Format(time.RFC3339Nano), st.RejectedSerial, st.Failures)
	}
	if r.sent[name] == key {
		return
	}
	r.sent[name] = key
	r.poster.Send(e)
}

// CertificateEvent is certificate name's check result: CRITICAL when a
// service failed its health gate on a new set (which was rolled back and
// refused) or renewals fail within emergency of expiry, WARNING while
// renewals fail or a candidate or replacement was refused, else OK.
func CertificateEvent(name string, st certstate.State, handlers []string, emergency time.Duration, now time.Time) Event {
	left := st.NotAfter.Sub(now)
	status, output := uint32(StatusOK), fmt.Sprintf("OK: %s: serial %s installed, expires in %s", name, st.Serial, inventory.HumanDuration(left))
	if st.NotAfter.IsZero() {
		output = fmt.Sprintf("OK: %s: nothing installed yet, no failure", name)
	}
	executed := now
	if line := inventory.RenewalProblem(name, st, now); line != "" {
		status, output, executed = StatusWarning, "WARNING: "+line, st.LastErrorAt
		if (st.Reason == certstate.FailConsumer && st.RejectedSerial != "") || (!st.NotAfter.IsZero() && left <= emergency) {
			status, output = StatusCritical, "CRITICAL: "+line
		}
	}
	tags := []MetricTag{{Name: "name", Value: name}}
	points := []MetricPoint{{Name: "sensu_tlsd_renewal_failures", Value: float64(st.Failures), Timestamp: now.Unix(), Tags: tags}}
	if !st.NotAfter.IsZero() { // nothing installed yet: no expiry to report
		points = append(points, MetricPoint{Name: "sensu_tlsd_certificate_expiry_seconds", Value: left.Seconds(), Timestamp: now.Unix(), Tags: tags})
	}
	return Event{
		Timestamp: now.Unix(),
		Check: &Check{
			Metadata: ObjectMeta{Name: CheckPrefix + name},
			Status:   status, Output: output, Executed: executed.Unix(), Handlers: handlers,
		},
		Metrics: &Metrics{Handlers: []string{}, Points: points},
	}
}

// CutoverEvent is the result of `migrate apply` for phase: CRITICAL with
// the reason it was refused, or OK once applied.
func CutoverEvent(phase string, refused error, handlers []string, now time.Time) Event {
	status, output := uint32(StatusOK), fmt.Sprintf("OK: cutover phase %s applied", phase)
	if refused != nil {
		status, output = StatusCritical, fmt.Sprintf("CRITICAL: cutover phase %s refused: %v", phase, refused)
	}
	return Event{
		Timestamp: now.Unix(),
		Check:     &Check{Metadata: ObjectMeta{Name: CutoverCheck}, Status: status, Output: output, Executed: now.Unix(), Handlers: handlers},
	}
}
