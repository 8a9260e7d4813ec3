package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/config"
	"github.com/sensu-tlsd/sensu-tlsd/rotate"
)

// DefaultDrainTimeout is how long Shutdown lets open connections finish
// when a listener sets no drain-timeout.
const DefaultDrainTimeout = 10 * time.Second

// Group is the daemon's set of proxy listeners started from one config.
type Group struct {
	listeners []*groupListener
	follows   []follow
	wg        sync.WaitGroup
}

// follow is what one listener follows: the files of managed certificate name.
type follow struct {
	name  string
	files Files
}

type groupListener struct {
	server *Server
	ln     net.Listener
	drain  time.Duration
}

// StartFromConfig builds every listener in cfg, and only when all of them
// are valid and can bind, starts serving them; a bad listener leaves
// nothing half-started. The group's CertificateChanged reloads each
// listener's managed certificate, so a rotation reaches new handshakes with
// no restart; a certificate not issued yet makes its listener fail
// handshakes until the first Change.
func StartFromConfig(cfg *config.Config, metrics *Metrics, log *slog.Logger) (*Group, error) {
	g := &Group{}
	fail := func(err error) (*Group, error) {
		for _, l := range g.listeners {
			l.ln.Close()
		}
		return nil, err
	}
	for i, l := range cfg.Listeners {
		var cert config.Certificate
		if l.Certificate != "" {
			c, ok := cfg.Certificate(l.Certificate)
			if !ok {
				return fail(fmt.Errorf("listeners[%d] (%s): certificate %q is not in certificates", i, l.Name, l.Certificate))
			}
			cert = *c
		}
		spec := SpecFromConfig(l, cert)
		spec.CertMayBePending = true
		srv, files, err := Build(spec, metrics, log)
		if err != nil {
			return fail(fmt.Errorf("listeners[%d]: %w", i, err))
		}
		ln, err := net.Listen("tcp", l.Listen)
		if err != nil {
			return fail(fmt.Errorf("listeners[%d] (%s): listen %s: %w", i, l.Name, l.Listen, err))
		}
		drain := l.DrainTimeout
		if drain <= 0 {
			drain = DefaultDrainTimeout
		}
		g.listeners = append(g.listeners, &groupListener{server: srv, ln: ln, drain: drain})
		g.follows = append(g.follows, follow{l.Certificate, files})
	}
	for _, l := range g.listeners {
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			if err := l.server.Serve(l.ln); err != nil && !errors.Is(err, ErrServerClosed) {
				log.Error("proxy listener stopped", "listener", l.server.opt.Name, "err", err)
			}
		}()
	}
	return g, nil
}

// CertificateChanged reloads the certificate of every listener serving the
// changed managed certificate, and every CA bundle the change rewrote
// (a client-ca or originate CA that is one of the managed files).
func (g *Group) CertificateChanged(ctx context.Context, c rotate.Change) error {
	var errs []error
	for _, f := range g.follows {
		errs = append(errs, f.files.CertificateChanged(ctx, f.name, c))
	}
	return errors.Join(errs...)
}

// Addrs are the addresses the listeners accept on, in config order.
func (g *Group) Addrs() []net.Addr {
	out := make([]net.Addr, len(g.listeners))
	for i, l := range g.listeners {
		out[i] = l.ln.Addr()
	}
	return out
}

// Agents lists the Sensu agents every listener has seen, for
// `sensu-tlsd status`.
func (g *Group) Agents() []AgentSeen {
	var out []AgentSeen
	for _, l := range g.listeners {
		out = append(out, l.server.Agents()...)
	}
	slices.SortStableFunc(out, func(a, b AgentSeen) int {
		switch {
		case a.Listener < b.Listener:
			return -1
		case a.Listener > b.Listener:
			return 1
		}
		return 0
	})
	return out
}

// Shutdown drains every listener at once, each within its own
// drain-timeout (bounded by ctx), and returns when all are closed.
func (g *Group) Shutdown(ctx context.Context) error {
	var errs []error
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, l := range g.listeners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dctx, cancel := context.WithTimeout(ctx, l.drain)
			defer cancel()
			if err := l.server.Shutdown(dctx); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("listener %s: %w", l.server.opt.Name, err))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	g.wg.Wait()
	return errors.Join(errs...)
}
