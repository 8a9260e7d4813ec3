package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sensu-tlsd/sensu-tlsd/config"
	"github.com/sensu-tlsd/sensu-tlsd/internal/event"
	"github.com/sensu-tlsd/sensu-tlsd/internal/reload"
)

// DefaultDrainTimeout is how long Shutdown lets open connections finish
// when a listener sets no drain-timeout (and `sensu-tlsd proxy` no
// --drain-timeout).
const DefaultDrainTimeout = 10 * time.Second

// Listeners keeps the daemon's proxy listeners in step with its config
// across reloads. It is the one bus subscriber for all of them, so a
// reload that replaces listeners leaves no stale subscriber behind.
//
// A reload keeps each listener whose name, mode and address are
// unchanged on its socket and updates it in place (Server.Update), so its
// sessions continue; only listeners that really changed are replaced.
type Listeners struct {
	metrics *Metrics
	log     *slog.Logger

	mu      sync.Mutex
	running []*runningListener // in config order
	retired []*runningListener // replaced, draining their sessions
	wg      sync.WaitGroup     // Serve loops and retired drains
	closed  bool               // Shutdown has begun: Commit binds nothing more

	// While a Prepare is outstanding, the Changes delivered meanwhile are
	// kept: the listeners it built read their files before them, and
	// Commit passes them on, so none is missed by a listener it swaps in.
	outstanding int
	since       []event.Change
}

// errShuttingDown refuses a reload that arrives during or after Shutdown.
var errShuttingDown = errors.New("proxy listeners: shutting down, so the new configuration's listeners are not started")

// runningListener is one serving listener and what it was built from.
type runningListener struct {
	conf   config.Listener
	cert   config.Certificate
	server *Server
	ln     net.Listener
	files  Files
}

func (r *runningListener) drain() time.Duration {
	if r.conf.DrainTimeout > 0 {
		return r.conf.DrainTimeout
	}
	return DefaultDrainTimeout
}

// sameSocket reports whether b can take over r's socket in place.
func (r *runningListener) sameSocket(b planned) bool {
	return r.conf.Name == b.conf.Name && r.conf.Mode == b.conf.Mode && r.conf.Listen == b.conf.Listen
}

// planned is one listener of a config, built but not bound.
type planned struct {
	conf  config.Listener
	cert  config.Certificate
	opt   Options
	files Files
}

// NewListeners registers the proxy metrics on reg once for the life of
// the daemon.
func NewListeners(reg prometheus.Registerer, log *slog.Logger) (*Listeners, error) {
	m, err := NewMetrics(reg)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	return &Listeners{metrics: m, log: log}, nil
}

// Prepare builds every listener of cfg without binding anything, so a
// reload can reject a configuration whose listeners cannot start (a
// missing client-ca, a bad target) before any of it is applied; Commit
// binds and swaps in what Prepare built.
func (l *Listeners) Prepare(cfg *config.Config) (reload.Pending, error) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil, errShuttingDown
	}
	l.outstanding++
	mark := len(l.since)
	l.mu.Unlock()
	plan, err := l.plan(cfg)
	if err != nil {
		l.mu.Lock()
		l.settle()
		l.mu.Unlock()
		return nil, err
	}
	return &pendingListeners{l: l, cfg: cfg, plan: plan, mark: mark}, nil
}

// settle ends one outstanding Prepare; l.mu is held.
func (l *Listeners) settle() {
	if l.outstanding--; l.outstanding == 0 {
		l.since = nil
	}
}

// pendingListeners is what Prepare built for one configuration.
type pendingListeners struct {
	l    *Listeners
	cfg  *config.Config
	plan []planned
	mark int // Changes in l.since from here on came after plan read its files
}

// Abort drops the built listeners: nothing was bound or started.
func (p *pendingListeners) Abort() {
	p.l.mu.Lock()
	defer p.l.mu.Unlock()
	p.l.settle()
}

// Commit is Listeners.commit of the prepared configuration.
func (p *pendingListeners) Commit(ctx context.Context) error {
	return p.l.commit(ctx, p.cfg, p.plan, p.mark)
}

// plan builds every listener of cfg. A certificate the daemon has not
// issued yet is no error: its listener fails handshakes until the first
// Change.
func (l *Listeners) plan(cfg *config.Config) ([]planned, error) {
	out := make([]planned, 0, len(cfg.Listeners))
	for i, ln := range cfg.Listeners {
		var cert config.Certificate
		if ln.Certificate != "" {
			c, ok := cfg.Certificate(ln.Certificate)
			if !ok {
				return nil, fmt.Errorf("%s: certificate %q is not in certificates; name one of the certificates entries", where(cfg, i), ln.Certificate)
			}
			cert = *c
		}
		spec := SpecFromConfig(ln, cert)
		spec.CertMayBePending = true
		opt, files, err := buildOptions(spec, l.metrics, l.log)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where(cfg, i), err)
		}
		out = append(out, planned{conf: ln, cert: cert, opt: opt, files: files})
	}
	return out, nil
}

// commit starts the listeners of plan, built from cfg, or brings the
// running ones in line with it. Listeners with the same name, mode and
// address are updated in place; removed ones stop accepting at once and
// drain their sessions within their drain-timeout in the background, so a
// listener that moved or changed mode binds straight away. When a new
// listener cannot bind (a port taken meanwhile) nothing changes: the
// removed ones accept again. The Changes delivered since Prepare (from
// mark in l.since) are passed to the listeners it built.
func (l *Listeners) commit(ctx context.Context, cfg *config.Config, plan []planned, mark int) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	missed := slices.Clone(l.since[mark:])
	l.settle()
	if l.closed {
		return errShuttingDown
	}
	for _, p := range plan {
		for _, c := range missed {
			if err := p.files.CertificateChanged(ctx, p.conf.Certificate, c); err != nil {
				l.log.Warn("proxy listener: a certificate change announced while the reload was prepared did not load", "listener", p.conf.Name, "error", err)
			}
		}
	}
	next := make([]*runningListener, len(plan))
	kept := map[*runningListener]bool{}
	for i, p := range plan {
		for _, r := range l.running {
			if !kept[r] && r.sameSocket(p) {
				kept[r], next[i] = true, r
				break
			}
		}
	}
	var removed []*runningListener
	for _, r := range l.running {
		if !kept[r] {
			removed = append(removed, r)
		}
	}
	// Free the removed listeners' ports first: a new one may take one over.
	for _, r := range removed {
		r.server.Detach(r.ln)
	}
	bound := make([]net.Listener, len(plan))
	for i, p := range plan {
		if next[i] != nil {
			continue
		}
		ln, err := net.Listen("tcp", p.conf.Listen)
		if err == nil {
			bound[i] = ln
			continue
		}
		for _, b := range bound {
			if b != nil {
				b.Close()
			}
		}
		state := "the previous listeners are back"
		if back := l.reattach(removed); back != nil {
			state = "restarting the previous listeners failed too: " + back.Error()
		}
		return fmt.Errorf("%s: cannot listen on %s: %w (%s); fix: %s", where(cfg, i), p.conf.Listen, bindCause(err), state,
			bindFix(err, fmt.Sprintf("listeners[%d].listen", i), p.conf.Listen))
	}
	for i, p := range plan {
		if r := next[i]; r != nil {
			if reflect.DeepEqual(r.conf, p.conf) && reflect.DeepEqual(r.cert, p.cert) {
				r.server.ReloadDeny() // SIGHUP re-reads the deny-file; it logs what changed
				continue
			}
			closed := r.server.Update(p.opt)
			r.conf, r.cert, r.files = p.conf, p.cert, p.files
			// Closed sessions are those the listener no longer admits
			// (plaintext once allow-plaintext is off, client certificates
			// the new client-ca or allow-lists refuse); their clients
			// reconnect under the new settings.
			level := slog.LevelInfo
			if closed > 0 {
				level = slog.LevelWarn
			}
			l.log.Log(context.Background(), level, "proxy listener updated in place", "listener", p.conf.Name, "mode", p.conf.Mode,
				"address", r.ln.Addr().String(), "closed_sessions", closed)
			continue
		}
		next[i] = &runningListener{conf: p.conf, cert: p.cert, server: newServer(p.opt), files: p.files}
		l.serve(next[i], bound[i])
		l.log.Info("proxy listener serving", "listener", p.conf.Name, "mode", p.conf.Mode, "address", bound[i].Addr().String())
	}
	for _, r := range removed {
		l.retire(r)
	}
	l.running = next
	return nil
}

// serve starts accepting on ln for r; l.mu is held.
func (l *Listeners) serve(r *runningListener, ln net.Listener) {
	r.ln = ln
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		if err := r.server.Serve(ln); err != nil && !errors.Is(err, ErrServerClosed) {
			l.log.Error("proxy listener stopped", "listener", r.conf.Name, "err", err)
		}
	}()
}

// reattach makes detached listeners accept on their addresses again.
func (l *Listeners) reattach(rs []*runningListener) error {
	var errs []error
	for _, r := range rs {
		ln, err := net.Listen("tcp", r.conf.Listen)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: listen %s: %w", r.conf.Name, r.conf.Listen, err))
			continue
		}
		l.serve(r, ln)
	}
	return errors.Join(errs...)
}

// retire drains a replaced listener's sessions in the background; l.mu is held.
func (l *Listeners) retire(r *runningListener) {
	l.log.Info("proxy listener closed: it is not in the new configuration at this address and mode; open sessions drain",
		"listener", r.conf.Name, "mode", r.conf.Mode, "address", r.ln.Addr().String(), "drain_timeout", r.drain().String())
	l.retired = append(l.retired, r)
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), r.drain())
		defer cancel()
		if err := r.server.Shutdown(ctx); err != nil {
			l.log.Warn("drain deadline of a replaced proxy listener passed; closed its remaining sessions", "listener", r.conf.Name, "err", err)
		}
		l.mu.Lock()
		l.retired = slices.DeleteFunc(l.retired, func(x *runningListener) bool { return x == r })
		l.mu.Unlock()
	}()
}

// CertificateChanged reloads the certificate of every listener serving the
// changed managed certificate, and every CA bundle the change rewrote (a
// client-ca or originate CA that is one of the managed files).
func (l *Listeners) CertificateChanged(ctx context.Context, c event.Change) error {
	type follow struct {
		name  string
		files Files
	}
	l.mu.Lock()
	if l.outstanding > 0 {
		l.since = append(l.since, c)
	}
	follows := make([]follow, len(l.running))
	for i, r := range l.running {
		follows[i] = follow{r.conf.Certificate, r.files}
	}
	l.mu.Unlock()
	var errs []error
	for _, f := range follows {
		errs = append(errs, f.files.CertificateChanged(ctx, f.name, c))
	}
	return errors.Join(errs...)
}

// Agents lists the Sensu agents the running listeners have seen, for
// `sensu-tlsd status`.
func (l *Listeners) Agents() []AgentSeen {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []AgentSeen
	for _, r := range l.running {
		out = append(out, r.server.Agents()...)
	}
	slices.SortStableFunc(out, func(a, b AgentSeen) int { return strings.Compare(a.Listener, b.Listener) })
	return out
}

// Shutdown drains every listener at once, running and replaced, each
// within its own drain-timeout (bounded by ctx), and returns when all are
// closed.
func (l *Listeners) Shutdown(ctx context.Context) error {
	l.mu.Lock()
	l.closed = true
	all := append(slices.Clone(l.running), l.retired...)
	l.running = nil
	l.mu.Unlock()
	var errs []error
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, r := range all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dctx, cancel := context.WithTimeout(ctx, r.drain())
			defer cancel()
			if err := r.server.Shutdown(dctx); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("listener %s: %w", r.conf.Name, err))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	l.wg.Wait()
	return errors.Join(errs...)
}

// where names listener i of cfg for errors: the file and the entry.
func where(cfg *config.Config, i int) string {
	file := cfg.File
	if file == "" {
		file = config.DefaultFile
	}
	return fmt.Sprintf("%s: listeners[%d] (%s)", file, i, cfg.Listeners[i].Name)
}

// bindCause is what the kernel said (bind: address already in use),
// without the address net.Listen repeats.
func bindCause(err error) error {
	var se *os.SyscallError
	if errors.As(err, &se) {
		return se
	}
	return err
}

// bindFix is what to do about a listen address (config key key) that
// could not be bound.
func bindFix(err error, key, addr string) string {
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		return fmt.Sprintf("stop what listens on %s (ss -ltnp shows it), or give %s another address", addr, key)
	case errors.Is(err, syscall.EACCES):
		return fmt.Sprintf("a port below 1024 needs CAP_NET_BIND_SERVICE (add it to the unit in a drop-in), or give %s a port above 1023", key)
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return fmt.Sprintf("%s is not an address of this host; give %s one of its addresses, or 0.0.0.0", addr, key)
	}
	return fmt.Sprintf("give %s a host:port this host can listen on", key)
}
