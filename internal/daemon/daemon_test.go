package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/config"
	"github.com/sensu-tlsd/sensu-tlsd/internal/event"
	"github.com/sensu-tlsd/sensu-tlsd/internal/logbuf"
	"github.com/sensu-tlsd/sensu-tlsd/internal/reload"
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

// recordingReloader records every configuration it prepared, committed
// and aborted, by log level; with refuse, it refuses log-level debug.
type recordingReloader struct {
	refuse    bool
	mu        sync.Mutex
	prepared  []string
	committed []string
	aborted   []string
}

func (r *recordingReloader) Prepare(cfg *config.Config) (reload.Pending, error) {
	if r.refuse && cfg.LogLevel == "debug" {
		return nil, errors.New("listeners[0] (sensu-agent): client-ca /nowhere.pem: no such file")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.prepared = append(r.prepared, cfg.LogLevel)
	return recorded{r, cfg.LogLevel}, nil
}

func (r *recordingReloader) record(list *[]string, level string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	*list = append(*list, level)
}

func (r *recordingReloader) lists() (prepared, committed, aborted []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.prepared), slices.Clone(r.committed), slices.Clone(r.aborted)
}

// recorded is one configuration a recordingReloader prepared.
type recorded struct {
	r     *recordingReloader
	level string
}

func (p recorded) Commit(context.Context) error {
	p.r.record(&p.r.committed, p.level)
	return nil
}

func (p recorded) Abort() { p.r.record(&p.r.aborted, p.level) }

// testConfig is one backend certificate under dir, its files in certDir.
func testConfig(t *testing.T, dir, level, certDir string) *config.Config {
	t.Helper()
	cfg, err := config.Parse("tlsd.yml", fmt.Appendf(nil, `state-dir: %s
metrics-address: ""
log-level: %s
ca: {create: true}
renewal: {jitter: 0s}
defaults: {dir: %s}
certificates:
  - {name: backend, profile: backend, hosts: [localhost]}
`, dir, level, certDir))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// startDaemon runs d (its consumers subscribed to d.Bus) from cfg, its
// configuration on SIGHUP taken from next, until the test ends; the
// returned func waits for the next Ready.
func startDaemon(t *testing.T, d *Daemon, cfg *config.Config, next <-chan *config.Config, logs *logbuf.Buffer) (waitReady func(what string)) {
	t.Helper()
	ready := make(chan struct{}, 4)
	d.Metrics = rotate.NewMetrics()
	d.Log = slog.New(slog.NewTextHandler(logs, nil))
	d.Notifier = readyNotifier{ready: ready}
	d.Load = func() (*config.Config, error) { return <-next, nil }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, cfg) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return func(what string) {
		t.Helper()
		select {
		case <-ready:
		case <-time.After(20 * time.Second):
			t.Fatalf("the daemon did not report ready %s\n%s", what, logs.String())
		}
	}
}

// builds counts what a Rebuilt built and released, each build tagged with
// the cert-file of the configuration it was built from.
type builds struct {
	mu       sync.Mutex
	built    int
	released int
	got      []string // tag:cert-file of each change delivered
}

func (b *builds) build(cfg *config.Config) (event.Subscriber, func(), error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.built++
	tag := cfg.Certificates[0].CertFile
	sub := event.SubscriberFunc(func(_ context.Context, c event.Change) error {
		b.mu.Lock()
		defer b.mu.Unlock()
		b.got = append(b.got, tag+":"+string(c.Reason)+":"+c.CertFile)
		return nil
	})
	return sub, func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		b.released++
	}, nil
}

func (b *builds) counts() (built, released int, got []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.built, b.released, append([]string(nil), b.got...)
}

// TestReloadIsCheckedWholeBeforeAnythingChanges: a configuration one
// reloader refuses is rejected before the log level, the certificates or
// any other reloader change, and what the reloaders before it prepared is
// aborted (the consumers' build released); the next good one is prepared
// once by every reloader and committed.
func TestReloadIsCheckedWholeBeforeAnythingChanges(t *testing.T) {
	dir := t.TempDir()
	certDir := filepath.Join(dir, "tls")
	next := make(chan *config.Config, 1)
	level := new(slog.LevelVar)
	logs := &logbuf.Buffer{}
	b := &builds{}
	first := testConfig(t, dir, "info", certDir)
	consumers, err := rotate.NewRebuilt(first, b.build)
	if err != nil {
		t.Fatal(err)
	}
	defer consumers.Close()
	x, refusing, y := &recordingReloader{}, &recordingReloader{refuse: true}, &recordingReloader{}
	d := &Daemon{Bus: &event.Bus{}, LogLevel: level, Reloaders: []reload.Reloader{consumers, x, refusing, y}}
	waitReady := startDaemon(t, d, first, next, logs)
	waitReady("at start")

	next <- testConfig(t, dir, "debug", certDir)
	syscall.Kill(syscall.Getpid(), syscall.SIGHUP)
	waitReady("after the refused reload")
	if !strings.Contains(logs.String(), "new configuration rejected") || !strings.Contains(logs.String(), "client-ca /nowhere.pem") {
		t.Fatalf("the refusal was not logged with its reason:\n%s", logs.String())
	}
	// x, before the refusing reloader, prepared it and had it aborted; y,
	// after it, was never asked.
	if p, c, a := x.lists(); level.Level() != slog.LevelInfo || len(c) != 0 || !slices.Equal(p, []string{"debug"}) || !slices.Equal(a, p) {
		t.Fatalf("a refused configuration was partly applied: level %v, x prepared %v, committed %v, aborted %v", level.Level(), p, c, a)
	}
	if p, _, _ := y.lists(); len(p) != 0 {
		t.Fatalf("a reloader after the refusing one prepared %v", p)
	}
	if built, released, _ := b.counts(); built != 2 || released != 1 {
		t.Fatalf("consumers built %d and released %d, want the build the refused reload prepared released", built, released)
	}

	next <- testConfig(t, dir, "warn", certDir)
	syscall.Kill(syscall.Getpid(), syscall.SIGHUP)
	waitReady("after the good reload")
	for _, r := range []*recordingReloader{x, refusing, y} {
		if p, c, _ := r.lists(); level.Level() != slog.LevelWarn || !slices.Contains(p, "warn") || !slices.Equal(c, []string{"warn"}) {
			t.Fatalf("a good configuration did not reach everything: level %v, prepared %v, committed %v", level.Level(), p, c)
		}
	}
	if built, released, _ := b.counts(); built != 3 || released != 2 {
		t.Fatalf("consumers built %d and released %d, want one build for the good reload (3) and the old one released (2)", built, released)
	}
}

// slowCommit takes its time committing, as a reloader restarting
// something would; the certificates must wait for it.
type slowCommit struct{ reload.Reloader }

func (s slowCommit) Prepare(cfg *config.Config) (reload.Pending, error) {
	p, err := s.Reloader.Prepare(cfg)
	if err != nil {
		return nil, err
	}
	return slowPending{p}, nil
}

type slowPending struct{ reload.Pending }

func (s slowPending) Commit(ctx context.Context) error {
	time.Sleep(300 * time.Millisecond)
	return s.Pending.Commit(ctx)
}

// TestReloadAppliesConsumersBeforeCertificates: a reload that moves a
// certificate publishes the move to the consumers built from the new
// configuration (its Sensu files, its services), never to the old ones.
func TestReloadAppliesConsumersBeforeCertificates(t *testing.T) {
	dir := t.TempDir()
	oldDir, newDir := filepath.Join(dir, "tls"), filepath.Join(dir, "tls-2")
	next := make(chan *config.Config, 1)
	logs := &logbuf.Buffer{}
	b := &builds{}
	first := testConfig(t, dir, "info", oldDir)
	consumers, err := rotate.NewRebuilt(first, b.build)
	if err != nil {
		t.Fatal(err)
	}
	defer consumers.Close()
	d := &Daemon{Bus: &event.Bus{}, Reloaders: []reload.Reloader{slowCommit{consumers}}}
	d.Bus.Subscribe(consumers)
	waitReady := startDaemon(t, d, first, next, logs)
	waitReady("at start")
	waitFor := func(what string, ok func([]string) bool) []string {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			_, _, got := b.counts()
			if ok(got) {
				return got
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: consumers got %v\n%s", what, got, logs.String())
			}
		}
	}
	oldCert, newCert := filepath.Join(oldDir, "backend.pem"), filepath.Join(newDir, "backend.pem")
	waitFor("the first issuance", func(got []string) bool { return len(got) == 1 })

	next <- testConfig(t, dir, "info", newDir)
	syscall.Kill(syscall.Getpid(), syscall.SIGHUP)
	waitReady("after the reload")
	got := waitFor("the move", func(got []string) bool { return len(got) == 2 })
	if want := []string{oldCert + ":initial:" + oldCert, newCert + ":moved:" + newCert}; got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("consumers got %v, want %v: the move reached the consumers of the old configuration", got, want)
	}
}
