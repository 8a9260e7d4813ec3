package agentcutover

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/config"
	"github.com/sensu-tlsd/sensu-tlsd/config/sensu"
	"github.com/sensu-tlsd/sensu-tlsd/internal/atomicfile"
	"github.com/sensu-tlsd/sensu-tlsd/internal/pki"
	"github.com/sensu-tlsd/sensu-tlsd/internal/reload"
)

// Restarter restarts sensu-agent and waits until its /healthz at
// healthURL says it is connected, within timeout.
type Restarter interface {
	Restart(ctx context.Context, healthURL string, timeout time.Duration) error
}

// Settings are what one configuration asks of the follower.
type Settings struct {
	Enabled          bool
	AgentConfig      string   // agent.yml
	AgentEnvFiles    []string // the environment files the sensu-agent unit loads
	Trust            Trust
	Interval         time.Duration
	ReconnectTimeout time.Duration
	StateFile        string
	Restarter        Restarter
}

// SettingsOf resolves cfg's agent-cutover block, with restart as the way
// sensu-agent is restarted.
func SettingsOf(cfg *config.Config, restart func(*config.Config) Restarter) (Settings, error) {
	ac := cfg.AgentCutover
	s := Settings{Enabled: ac.Enabled}
	if !ac.Enabled {
		return s, nil
	}
	s.AgentConfig = cfg.Sensu.AgentConfig
	if s.AgentConfig == "" {
		s.AgentConfig = sensu.DefaultAgentConfig
	}
	s.AgentEnvFiles = sensu.EnvFilesOf(sensu.Agent, cfg.Sensu.AgentEnvFiles)
	s.Trust.CAFile = ac.CAFile
	if ac.CAFingerprint != "" {
		pin, err := pki.ParseFingerprintSHA256(ac.CAFingerprint)
		if err != nil {
			return s, fmt.Errorf("agent-cutover.ca-fingerprint-sha256: %w", err)
		}
		s.Trust.Pin = &pin
	}
	s.Interval = ac.Interval
	s.ReconnectTimeout = ac.ReconnectTimeout
	if s.ReconnectTimeout == 0 {
		s.ReconnectTimeout = sensu.ServiceOf(sensu.Agent).HealthTimeout
	}
	s.StateFile = StateFile(cfg.StateDir)
	s.Restarter = restart(cfg)
	return s, nil
}

// Follower is the daemon service that switches this node's sensu-agent to
// wss:// when the backends are ready, and a reload.Reloader.
type Follower struct {
	log     *slog.Logger
	restart func(*config.Config) Restarter

	mu       sync.Mutex
	settings Settings
	wake     chan struct{}

	// rollbacks counts switches in a row that went back; each doubles the
	// wait before the next attempt (up to maxRetryWait), so an agent that
	// cannot use wss:// is not restarted twice every interval for ever.
	rollbacks int
}

// maxRetryWait bounds the wait after repeated rollbacks.
const maxRetryWait = time.Hour

// retryWait is the wait before the next look.
func (f *Follower) retryWait(s Settings) time.Duration {
	w := s.Interval
	for i := 0; i < f.rollbacks && w < maxRetryWait; i++ {
		w *= 2
	}
	return min(w, maxRetryWait)
}

// New returns a follower that restarts sensu-agent with what restart
// builds from each configuration.
func New(log *slog.Logger, restart func(*config.Config) Restarter) *Follower {
	return &Follower{log: log, restart: restart, wake: make(chan struct{}, 1)}
}

// Prepare resolves cfg; Commit puts it in effect and probes at once.
func (f *Follower) Prepare(cfg *config.Config) (reload.Pending, error) {
	s, err := SettingsOf(cfg, f.restart)
	if err != nil {
		return nil, err
	}
	return pending{f, s}, nil
}

type pending struct {
	f *Follower
	s Settings
}

func (p pending) Commit(context.Context) error {
	p.f.mu.Lock()
	p.f.settings = p.s
	p.f.mu.Unlock()
	select {
	case p.f.wake <- struct{}{}:
	default:
	}
	return nil
}

func (pending) Abort() {}

// Run follows until ctx ends: a step at once, then one each interval or
// after a reload.
func (f *Follower) Run(ctx context.Context) error {
	for {
		f.mu.Lock()
		s := f.settings
		f.mu.Unlock()
		wait := time.Hour // disabled: only a reload wakes it
		if s.Enabled {
			f.Step(ctx, s)
			wait = f.retryWait(s)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-f.wake:
		case <-time.After(wait):
		}
	}
}

// Step looks once: switched already, not ready, or switch now. What it
// found goes to the state file, and to the log when it changed. Run calls
// it from one goroutine.
func (f *Follower) Step(ctx context.Context, s Settings) Status {
	st := f.step(ctx, s)
	st.Probed = time.Now().UTC()
	prev, _ := ReadStatus(s.StateFile)
	if st.State == StateSwitched && st.Switched.IsZero() {
		st.Switched = prev.Switched // switched by an earlier step, or by hand
	}
	if err := writeStatus(s.StateFile, st); err != nil {
		f.log.Warn("agent cutover: cannot record its state", "file", s.StateFile, "err", err)
	}
	if prev.State != st.State || prev.Detail != st.Detail {
		log := f.log.Info
		if st.State == StateRefused || st.State == StateRolledBack {
			log = f.log.Error
		}
		log("agent cutover: "+string(st.State), "detail", st.Detail, "agent-config", s.AgentConfig, "next-probe", st.Probed.Add(f.retryWait(s)).Format(time.RFC3339))
	}
	return st
}

func (f *Follower) step(ctx context.Context, s Settings) Status {
	node, err := sensu.ReadNode(sensu.Agent, s.AgentConfig, s.AgentEnvFiles)
	if err != nil {
		return Status{State: StateRefused, Detail: err.Error()}
	}
	urls := backendURLs(node)
	if plain := plaintext(urls); len(plain) == 0 {
		return Status{State: StateSwitched, Detail: "backend-url is " + strings.Join(urls, " ")}
	}
	probes, ca, err := s.Trust.ProbeAll(ctx, urls)
	if err != nil {
		return Status{State: StateRefused, Detail: err.Error()}
	}
	var fails []string
	for _, perr := range probes {
		var pinErr *PinError
		if errors.As(perr, &pinErr) {
			return Status{State: StateRefused, Detail: perr.Error()}
		}
		if perr != nil {
			fails = append(fails, perr.Error())
		}
	}
	if len(fails) > 0 {
		return Status{State: StateWaiting, Detail: "not every backend serves TLS verified by " + s.Trust.CAFile + " yet: " + strings.Join(fails, "; ")}
	}
	if ca != nil {
		if err := os.MkdirAll(filepath.Dir(s.Trust.CAFile), 0o755); err != nil {
			return Status{State: StateRefused, Detail: err.Error()}
		}
		if err := atomicfile.Write(s.Trust.CAFile, ca, atomicfile.Mode(0o644)); err != nil {
			return Status{State: StateRefused, Detail: fmt.Sprintf("writing the pinned CA to %s: %v", s.Trust.CAFile, err)}
		}
		f.log.Info("agent cutover: pinned CA taken from the backends' handshake", "ca-file", s.Trust.CAFile, "fingerprint", s.Trust.Pin.String())
	}
	return f.switchAgent(ctx, s, node, urls)
}

// backendURLs are the backend-url entries sensu-agent runs with.
func backendURLs(n *sensu.Node) []string {
	v, ok := n.Get("backend-url")
	if !ok {
		v, _ = sensu.Default(sensu.Agent, "backend-url")
	}
	return sensu.URLs(v)
}

// plaintext are the ws:// entries of urls.
func plaintext(urls []string) []string {
	var out []string
	for _, u := range urls {
		if !strings.HasPrefix(strings.ToLower(u), "wss://") {
			out = append(out, u)
		}
	}
	return out
}
