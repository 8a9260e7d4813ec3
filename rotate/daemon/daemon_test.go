package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/config"
	"github.com/sensu-tlsd/sensu-tlsd/rotate"
)

// readyNotifier reports each Ready on a channel (the daemon calls it at
// start and after every reload).
type readyNotifier struct{ ready chan struct{} }

func (n readyNotifier) Ready()   { n.ready <- struct{}{} }
func (readyNotifier) Reloading() {}
func (readyNotifier) Stopping()  {}
func (readyNotifier) Watchdog(ctx context.Context, _ func()) error {
	<-ctx.Done()
	return nil
}

// recordingReloader refuses configurations at log-level debug in Check and
// records every configuration it was asked to apply.
type recordingReloader struct {
	mu      sync.Mutex
	applied []string
}

func (r *recordingReloader) Check(cfg *config.Config) error {
	if cfg.LogLevel == "debug" {
		return errors.New("listeners[0] (sensu-agent): client-ca /nowhere.pem: no such file")
	}
	return nil
}

func (r *recordingReloader) Apply(_ context.Context, cfg *config.Config) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.applied = append(r.applied, cfg.LogLevel)
	return nil
}

// syncBuffer is a log sink the test reads while the daemon writes.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestReloadIsCheckedWholeBeforeAnythingChanges: a configuration one
// reloader refuses is rejected before the log level, the certificates or
// any other reloader change; the next good one reaches every reloader.
func TestReloadIsCheckedWholeBeforeAnythingChanges(t *testing.T) {
	dir := t.TempDir()
	configWith := func(level string) *config.Config {
		cfg, err := config.Parse("tlsd.yml", fmt.Appendf(nil, `state-dir: %s
metrics-address: ""
log-level: %s
ca: {create: true}
renewal: {jitter: 0s}
certificates:
  - {name: backend, profile: backend, hosts: [localhost]}
`, dir, level))
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	next := make(chan *config.Config, 1)
	level := new(slog.LevelVar)
	logs := &syncBuffer{}
	a, b := &recordingReloader{}, &recordingReloader{}
	d := &Daemon{
		Bus:       &rotate.Bus{},
		Metrics:   rotate.NewMetrics(),
		Log:       slog.New(slog.NewTextHandler(logs, nil)),
		LogLevel:  level,
		Notifier:  readyNotifier{ready: make(chan struct{}, 4)},
		Load:      func() (*config.Config, error) { return <-next, nil },
		Reloaders: []Reloader{a, b},
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, configWith("info")) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	ready := d.Notifier.(readyNotifier).ready
	waitReady := func(what string) {
		t.Helper()
		select {
		case <-ready:
		case <-time.After(20 * time.Second):
			t.Fatalf("the daemon did not report ready %s\n%s", what, logs.String())
		}
	}
	waitReady("at start")

	next <- configWith("debug")
	syscall.Kill(syscall.Getpid(), syscall.SIGHUP)
	waitReady("after the refused reload")
	if !strings.Contains(logs.String(), "new configuration rejected") || !strings.Contains(logs.String(), "client-ca /nowhere.pem") {
		t.Fatalf("the refusal was not logged with its reason:\n%s", logs.String())
	}
	if level.Level() != slog.LevelInfo || len(a.applied)+len(b.applied) != 0 {
		t.Fatalf("a refused configuration was partly applied: level %v, applied %v %v", level.Level(), a.applied, b.applied)
	}

	next <- configWith("warn")
	syscall.Kill(syscall.Getpid(), syscall.SIGHUP)
	waitReady("after the good reload")
	if level.Level() != slog.LevelWarn || len(a.applied) != 1 || len(b.applied) != 1 {
		t.Fatalf("a good configuration did not reach everything: level %v, applied %v %v", level.Level(), a.applied, b.applied)
	}
}
