package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Mode is what a listener does with TLS: it completes the client side of
// an accepted connection and opens the target side. The Server handles
// everything else (limits, timeouts, relay, metrics) the same for all.
type Mode interface {
	// Accept completes the client side on conn: a TLS handshake, a sniff
	// of the first bytes, or nothing. The Server has set conn's deadline
	// to the handshake timeout. It returns the stream to relay (a
	// *tls.Conn over a *gatedConn, or conn itself) and how the client
	// came in.
	Accept(conn *net.TCPConn) (net.Conn, Peer, error)
	// Admit says whether a client that another Mode accepted may stay:
	// the Server asks when the listener is updated in place (a client
	// accepted by this Mode has passed it already) and closes the
	// sessions the new Mode refuses.
	Admit(p Peer) error
	// Dial opens the target side, giving each target it tries up to
	// timeout, and reports every target that failed on the way (also
	// those a fail-over recovered). Once ctx has ended it tries no further
	// target; the dial under way runs to its timeout, since a context
	// derived from ctx would register with it, under its lock, for every
	// connection.
	Dial(ctx context.Context, timeout time.Duration, failed func(*TargetError)) (net.Conn, error)
}

// Terminate accepts TLS and forwards plaintext to Target.
type Terminate struct {
	TLS    *tls.Config // from serverTLSConfig
	Auth   *ClientAuth // the mTLS TLS enforces; nil without
	Target string
	Dialer net.Dialer
	// Upstream, when set, carries the target side over TLS instead
	// (target-tls): the proxy reads the client's requests in between.
	Upstream *Originate
}

// Accept implements Mode.
func (m *Terminate) Accept(conn *net.TCPConn) (net.Conn, Peer, error) {
	return serverHandshake(conn, m.TLS)
}

// Admit implements Mode: a TLS client whose certificate Auth takes.
func (m *Terminate) Admit(p Peer) error { return m.Auth.admits(p) }

// Dial implements Mode.
func (m *Terminate) Dial(ctx context.Context, timeout time.Duration, failed func(*TargetError)) (net.Conn, error) {
	if m.Upstream != nil {
		return m.Upstream.Dial(ctx, timeout, failed)
	}
	return dialPlain(&m.Dialer, m.Target, timeout, failed)
}

// Target orders for Originate.
const (
	OrderInOrder = "in-order" // the first target is preferred, the rest are fail-over
	OrderSpread  = "spread"   // each connection starts at the next target in turn
)

// targetHoldDown is how long a target that failed is skipped, so one
// member that drops SYNs does not cost every new connection a dial timeout.
// When every target is held down they are all tried anyway.
const targetHoldDown = 10 * time.Second

// Originate accepts plaintext and forwards TLS to the first of Targets
// that connects and verifies.
type Originate struct {
	TLS *tls.Config // from clientTLSConfig; ServerName is set per target
	// Roots, when set, verifies the targets with its current bundle in
	// place of TLS.RootCAs, so a CA rollover needs no restart.
	Roots   *CAPool
	Targets []string
	// ServerName overrides the name verified on the targets' certificates;
	// "" verifies each target's own host.
	ServerName string
	// Spread starts each connection at the next target in turn instead of
	// the first, spreading sessions over the cluster members.
	Spread bool
	Dialer net.Dialer

	next    atomic.Uint64          // round-robin start, for Spread
	configs perPool[[]*tls.Config] // per-target client configs, by roots bundle
	once    sync.Once              // makes downTil
	downTil []atomic.Int64         // by target: held down until (unix ns), 0 when up
}

// Accept implements Mode.
func (m *Originate) Accept(conn *net.TCPConn) (net.Conn, Peer, error) {
	return conn, Peer{Transport: TransportPlaintext}, nil
}

// Admit implements Mode: every plaintext client.
func (m *Originate) Admit(Peer) error { return nil }

// Dial implements Mode: targets are tried in order (from the next one in
// turn with Spread), skipping those that failed within targetHoldDown;
// when all of those fail too, the held-down ones get their chance.
func (m *Originate) Dial(ctx context.Context, timeout time.Duration, failed func(*TargetError)) (net.Conn, error) {
	m.once.Do(func() { m.downTil = make([]atomic.Int64, len(m.Targets)) })
	n := len(m.Targets)
	start := 0
	if m.Spread {
		start = int((m.next.Add(1) - 1) % uint64(n))
	}
	now := time.Now().UnixNano()
	var errs []error
	var heldBuf [8]int
	held := heldBuf[:0]
	for k := range n {
		i := (start + k) % n
		if m.downTil[i].Load() > now {
			held = append(held, i)
			continue
		}
		if c := m.try(i, timeout, failed, &errs); c != nil {
			return c, nil
		}
		if ctx.Err() != nil {
			return nil, errors.Join(errs...)
		}
	}
	for _, i := range held {
		if c := m.try(i, timeout, failed, &errs); c != nil {
			return c, nil
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

// try dials target i and holds it down after a failure (lifted by a
// success), which it reports and adds to errs.
func (m *Originate) try(i int, timeout time.Duration, failed func(*TargetError), errs *[]error) net.Conn {
	c, err := m.dialOne(i, timeout)
	if err == nil {
		if m.downTil[i].Load() != 0 {
			m.downTil[i].Store(0)
		}
		return c
	}
	m.downTil[i].Store(time.Now().Add(targetHoldDown).UnixNano())
	te := &TargetError{Target: m.Targets[i], Err: err}
	failed(te)
	*errs = append(*errs, te)
	return nil
}

// config is target i's client config for the current roots.
func (m *Originate) config(i int) *tls.Config {
	roots := m.TLS.RootCAs
	if m.Roots != nil {
		roots = m.Roots.Pool()
	}
	cs, ok := m.configs.load(roots)
	if !ok {
		cs = make([]*tls.Config, len(m.Targets))
		for j, target := range m.Targets {
			c := m.TLS.Clone()
			c.RootCAs = roots
			c.ServerName = m.ServerName
			if c.ServerName == "" {
				c.ServerName, _, _ = net.SplitHostPort(target)
			}
			cs[j] = c
		}
		m.configs.store(roots, cs)
	}
	return cs[i]
}

func (m *Originate) dialOne(i int, timeout time.Duration) (net.Conn, error) {
	deadline := time.Now().Add(timeout)
	tcp, err := dialTCP(&m.Dialer, m.Targets[i], deadline)
	if err != nil {
		return nil, err
	}
	tcp.SetDeadline(deadline)
	tc := tls.Client(&gatedConn{TCPConn: tcp}, m.config(i))
	if err := tc.Handshake(); err != nil {
		tcp.Close()
		return nil, err
	}
	tcp.SetDeadline(time.Time{})
	return tc, nil
}

// Dual accepts TLS and, while AllowPlaintext is true, plaintext HTTP on
// the same port, and forwards plaintext to Target. It is the cutover
// port: agents move to wss one by one and the metrics show who has not.
type Dual struct {
	TLS            *tls.Config
	Auth           *ClientAuth // the mTLS TLS enforces; nil without
	Target         string
	AllowPlaintext bool
	Dialer         net.Dialer
	Upstream       *Originate // as in Terminate
}

// ErrPlaintextRefused is returned for a plaintext client on a dual port
// that no longer allows plaintext.
var ErrPlaintextRefused = errors.New("plaintext client on a TLS-only port")

// errUnknownProtocol is returned when the first bytes are neither TLS nor HTTP.
var errUnknownProtocol = errors.New("first bytes are neither a TLS ClientHello nor an HTTP request")

// plaintextRefusal tells a plaintext HTTP client why it is cut off, the
// way Sensu itself answers plain HTTP on a TLS port.
const plaintextRefusal = "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: 35\r\n\r\nThis port requires TLS (wss/https)\n"

// Accept implements Mode. The first bytes are peeked, not read, so the
// TLS stack or the target sees the connection from its first byte.
func (m *Dual) Accept(conn *net.TCPConn) (net.Conn, Peer, error) {
	first, err := peekFirst(conn)
	if err != nil {
		return nil, Peer{}, err
	}
	switch Sniff(first) {
	case ProtocolTLS:
		return serverHandshake(conn, m.TLS)
	case ProtocolHTTP:
		plain := Peer{Transport: TransportPlaintext}
		if err := m.Admit(plain); err != nil {
			conn.SetWriteDeadline(time.Now().Add(time.Second))
			conn.Write([]byte(plaintextRefusal))
			return nil, plain, err
		}
		return conn, plain, nil
	default:
		return nil, Peer{}, errUnknownProtocol
	}
}

// Admit implements Mode: plaintext while AllowPlaintext, TLS when Auth
// takes the client's certificate.
func (m *Dual) Admit(p Peer) error {
	if p.Transport == TransportPlaintext {
		if !m.AllowPlaintext {
			return ErrPlaintextRefused
		}
		return nil
	}
	return m.Auth.admits(p)
}

// Dial implements Mode.
func (m *Dual) Dial(ctx context.Context, timeout time.Duration, failed func(*TargetError)) (net.Conn, error) {
	if m.Upstream != nil {
		return m.Upstream.Dial(ctx, timeout, failed)
	}
	return dialPlain(&m.Dialer, m.Target, timeout, failed)
}

// TargetError is a failed connection to one target.
type TargetError struct {
	Target string
	Err    error
}

func (e *TargetError) Error() string { return "target " + e.Target + ": " + e.Err.Error() }
func (e *TargetError) Unwrap() error { return e.Err }

func dialPlain(d *net.Dialer, target string, timeout time.Duration, failed func(*TargetError)) (net.Conn, error) {
	c, err := dialTCP(d, target, time.Now().Add(timeout))
	if err != nil {
		te := &TargetError{Target: target, Err: err}
		failed(te)
		return nil, te
	}
	return c, nil
}

// dialTCP connects to target by deadline, under a context of its own: one
// derived from the server's would register with that shared parent, under
// its lock, on every dial.
func dialTCP(d *net.Dialer, target string, deadline time.Time) (*net.TCPConn, error) {
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", target)
	if err != nil {
		return nil, err
	}
	return c.(*net.TCPConn), nil
}

// peekFirst waits for the client's first bytes and returns up to sniffLen
// of them without consuming them.
func peekFirst(c *net.TCPConn) ([]byte, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	var buf [sniffLen]byte
	var n int
	var perr error
	err = raw.Read(func(fd uintptr) bool {
		n, _, perr = unix.Recvfrom(int(fd), buf[:], unix.MSG_PEEK)
		return perr != syscall.EAGAIN && perr != syscall.EINTR
	})
	switch {
	case err != nil:
		return nil, err
	case perr != nil:
		return nil, perr
	case n == 0:
		return nil, io.EOF
	}
	return buf[:n], nil
}

// serverHandshake runs under the deadline the Server set on conn rather
// than a context, which would cost a watcher goroutine per handshake. A
// failure wraps the tls.AlertError the server sent, when it went out in
// the clear, so the reason can be told from the alert, not the message.
func serverHandshake(conn *net.TCPConn, cfg *tls.Config) (net.Conn, Peer, error) {
	g := &gatedConn{TCPConn: conn}
	tc := tls.Server(g, cfg)
	p := Peer{Transport: TransportTLS}
	if err := tc.Handshake(); err != nil {
		if a, ok := g.sentAlert(); ok {
			err = fmt.Errorf("%w%.0w", err, a)
		}
		return nil, p, err
	}
	if cfg.ClientAuth != tls.NoClientCert {
		p.Chain = tc.ConnectionState().PeerCertificates
	}
	return tc, p, nil
}
