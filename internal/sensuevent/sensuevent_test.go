package sensuevent

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sensu-tlsd/sensu-tlsd/config"
	"github.com/sensu-tlsd/sensu-tlsd/internal/agentapitest"
	"github.com/sensu-tlsd/sensu-tlsd/internal/certstate"
)

func writeState(t *testing.T, stateDir, name string, st certstate.State) {
	t.Helper()
	dir := filepath.Join(stateDir, "certs", name)
	os.MkdirAll(dir, 0o755)
	b, _ := json.Marshal(st)
	tmp := filepath.Join(dir, ".state-tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "state.json")); err != nil {
		t.Fatal(err)
	}
}

// TestReporterFailingThenRecovering writes the state files the renewal
// engine writes and checks what reaches the stand-in agent: the failure
// with status's words, the refusal after a failed health gate, the OK.
func TestReporterFailingThenRecovering(t *testing.T) {
	agent := agentapitest.Start(t)
	url := agent.URL
	stateDir := t.TempDir()
	now := time.Now()
	writeState(t, stateDir, "backend-1", certstate.State{Name: "backend-1", Serial: "0A", NotAfter: now.Add(60 * 24 * time.Hour), LastSuccess: now})

	reg := prometheus.NewRegistry()
	p, err := NewPoster(reg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewReporter(p, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{StateDir: stateDir, Certificates: []config.Certificate{{Name: "backend-1"}},
		Events: config.Events{Enabled: true, AgentAPIURL: url, Handlers: []string{"slack"}, Timeout: time.Second}}
	cfg.ApplyDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go p.Run(ctx)
	go r.Run(ctx)
	if err := follow(ctx, r, cfg); err != nil {
		t.Fatal(err)
	}
	ev := agent.Wait(t, 1, 10*time.Second)[0]
	if ev.Check.Metadata.Name != "sensu-tlsd-renewal-backend-1" || *ev.Check.Status != StatusOK || !strings.HasPrefix(ev.Check.Output, "OK: backend-1: serial 0A installed") ||
		len(ev.Check.Handlers) != 1 || ev.Check.Handlers[0] != "slack" {
		t.Fatalf("first event: %+v", ev.Check)
	}

	writeState(t, stateDir, "backend-1", certstate.State{Name: "backend-1", Serial: "0A", NotAfter: now.Add(60 * 24 * time.Hour),
		Failures: 2, Reason: certstate.FailIssue, LastError: "issuing: the CA is offline", LastErrorAt: now, NextRenewal: now.Add(time.Minute)})
	ev = agent.Wait(t, 2, 10*time.Second)[1]
	if *ev.Check.Status != StatusWarning || !strings.Contains(ev.Check.Output, "WARNING: backend-1: renewal failing (2 in a row") || !strings.Contains(ev.Check.Output, "the CA is offline") {
		t.Fatalf("failing renewal: %+v", ev.Check)
	}
	if ev.Metrics == nil || len(ev.Metrics.Points) != 2 || ev.Metrics.Points[0].Name != "sensu_tlsd_renewal_failures" || ev.Metrics.Points[0].Value != 2 ||
		ev.Metrics.Points[0].Tags[0].Name != "name" || ev.Metrics.Points[0].Tags[0].Value != "backend-1" {
		t.Fatalf("failing renewal metrics: %+v", ev.Metrics)
	}

	writeState(t, stateDir, "backend-1", certstate.State{Name: "backend-1", Serial: "0A", NotAfter: now.Add(60 * 24 * time.Hour),
		Failures: 3, Reason: certstate.FailConsumer, RejectedSerial: "0B", LastError: "sensu-backend not healthy on serial 0B", LastErrorAt: now, NextRenewal: now.Add(time.Hour)})
	ev = agent.Wait(t, 3, 10*time.Second)[2]
	if *ev.Check.Status != StatusCritical || !strings.Contains(ev.Check.Output, "CRITICAL: backend-1: consumers rejected serial 0B") {
		t.Fatalf("health gate failure: %+v", ev.Check)
	}

	writeState(t, stateDir, "backend-1", certstate.State{Name: "backend-1", Serial: "0C", NotAfter: now.Add(90 * 24 * time.Hour), LastSuccess: now})
	ev = agent.Wait(t, 4, 10*time.Second)[3]
	if *ev.Check.Status != StatusOK || !strings.Contains(ev.Check.Output, "serial 0C installed") {
		t.Fatalf("recovery: %+v", ev.Check)
	}
	// A state write that changes nothing Sensu sees (a new schedule) sends nothing.
	writeState(t, stateDir, "backend-1", certstate.State{Name: "backend-1", Serial: "0C", NotAfter: now.Add(90 * 24 * time.Hour), LastSuccess: now, NextRenewal: now.Add(time.Hour)})
	time.Sleep(500 * time.Millisecond)
	if n := len(agent.Wait(t, 4, 10*time.Second)); n != 4 {
		t.Fatalf("%d events after a schedule-only state write, want 4", n)
	}
	if got := testutil.ToFloat64(p.posted); got != 4 {
		t.Fatalf("sensu_tlsd_events_posted_total %v, want 4", got)
	}
}

// TestPosterDeadAgent: Send returns at once with the agent hanging or
// gone; each failed post is counted, and the newest status is delivered
// once the agent is back.
func TestPosterDeadAgent(t *testing.T) {
	hang, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hang.Close() // accepts into the backlog and never answers
	// A post that never ends must not hold up Send: with an hour's
	// timeout, the 1000 sends return only if none waits for the post.
	stuck, err := NewPoster(prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	stuck.SetTarget(Target{URL: "http://" + hang.Addr().String() + "/events", Timeout: time.Hour})
	stuckCtx, stop := context.WithCancel(context.Background())
	defer stop()
	go stuck.Run(stuckCtx)
	sent := make(chan struct{})
	go func() {
		for i := range 1000 {
			stuck.Send(CutoverEvent("1 (bridge)", errors.New("refused"), nil, time.Unix(int64(i), 0)))
		}
		close(sent)
	}()
	select {
	case <-sent:
	case <-time.After(30 * time.Second):
		t.Fatal("Send waited for a post to an agent that never answers")
	}
	stop()

	reg := prometheus.NewRegistry()
	p, err := NewPoster(reg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go p.Run(ctx)
	p.SetTarget(Target{URL: "http://" + hang.Addr().String() + "/events", Timeout: 300 * time.Millisecond})
	for i := range 1000 {
		p.Send(CutoverEvent("1 (bridge)", errors.New("refused"), nil, time.Unix(int64(i), 0)))
	}
	deadline := time.Now().Add(5 * time.Second)
	for testutil.ToFloat64(p.failures.WithLabelValues(FailConnect)) < 1 {
		if time.Now().After(deadline) {
			t.Fatal("a post to the hanging agent was not counted as failed")
		}
		time.Sleep(20 * time.Millisecond)
	}

	agent := agentapitest.Start(t)
	url := agent.URL
	p.SetTarget(Target{URL: url, Timeout: time.Second})
	p.Send(CutoverEvent("1 (bridge)", nil, nil, time.Now()))
	ev := agent.Wait(t, 1, 10*time.Second)
	if len(ev) != 1 || *ev[0].Check.Status != StatusOK || ev[0].Check.Metadata.Name != CutoverCheck {
		t.Fatalf("after the agent came back: %+v (the 1000 queued events of one check coalesce into the newest)", ev)
	}
}

// TestPosterCountsRefusals: an agent answering 400 is a status failure.
func TestPosterCountsRefusals(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "bad event", http.StatusBadRequest) }))
	defer srv.Close()
	err := Post(context.Background(), Target{URL: srv.URL, Timeout: time.Second}, CutoverEvent("2 (agents)", nil, nil, time.Now()))
	var se statusError
	if !errors.As(err, &se) || se.code != 400 || !strings.Contains(err.Error(), "bad event") {
		t.Fatalf("Post to a refusing agent: %v", err)
	}
}

// TestReporterFollowsReloads: with events off nothing is sent; a reload
// that turns them on sends each certificate's current status, and one
// that drops a certificate stops following it.
func TestReporterFollowsReloads(t *testing.T) {
	agent := agentapitest.Start(t)
	stateDir := t.TempDir()
	now := time.Now()
	for _, name := range []string{"a", "b"} {
		writeState(t, stateDir, name, certstate.State{Name: name, Serial: "01", NotAfter: now.Add(time.Hour)})
	}
	p, err := NewPoster(prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewReporter(p, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go p.Run(ctx)
	go r.Run(ctx)
	cfg := &config.Config{StateDir: stateDir, Certificates: []config.Certificate{{Name: "a"}, {Name: "b"}},
		Events: config.Events{AgentAPIURL: agent.URL, Timeout: time.Second}}
	cfg.ApplyDefaults()
	if err := follow(ctx, r, cfg); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if n := len(agent.Wait(t, 0, time.Second)); n != 0 {
		t.Fatalf("%d events with events off", n)
	}
	cfg.Events.Enabled = true
	if err := follow(ctx, r, cfg); err != nil {
		t.Fatal(err)
	}
	if evs := agent.Wait(t, 2, 5*time.Second); len(evs) != 2 {
		t.Fatalf("turning events on: %d events, want one per certificate", len(evs))
	}
	cfg.Certificates = cfg.Certificates[:1]
	if err := follow(ctx, r, cfg); err != nil {
		t.Fatal(err)
	}
	writeState(t, stateDir, "b", certstate.State{Name: "b", Failures: 1, Reason: certstate.FailIssue, LastError: "x", LastErrorAt: now})
	writeState(t, stateDir, "a", certstate.State{Name: "a", Failures: 1, Reason: certstate.FailIssue, LastError: "y", LastErrorAt: now})
	agent.Wait(t, 3, 5*time.Second)
	time.Sleep(300 * time.Millisecond) // b's write, if followed, would arrive meanwhile
	evs := agent.Wait(t, 3, time.Second)
	if len(evs) != 3 || evs[2].Check.Metadata.Name != "sensu-tlsd-renewal-a" {
		t.Fatalf("after dropping b: %d events, last %+v; want only a's failure", len(evs), evs[len(evs)-1].Check)
	}
}

// follow puts cfg in effect as a daemon start or reload does.
func follow(ctx context.Context, r *Reporter, cfg *config.Config) error {
	p, err := r.Prepare(cfg)
	if err != nil {
		return err
	}
	return p.Commit(ctx)
}
