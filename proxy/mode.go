package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
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
	Accept(conn *net.TCPConn) (net.Conn, Transport, error)
	// Admit says whether a client that came in on t may be relayed. The
	// Server asks again when the listener is updated in place and closes
	// the sessions the new Mode no longer admits.
	Admit(t Transport) error
	// Dial opens the target side, giving each target it tries up to
	// timeout, and reports every target that failed on the way (also
	// those a fail-over recovered). It gives up when ctx ends.
	Dial(ctx context.Context, timeout time.Duration, failed func(*TargetError)) (net.Conn, error)
}

// Terminate accepts TLS and forwards plaintext to Target.
type Terminate struct {
	TLS    *tls.Config // from ServerTLS
	Target string
	Dialer net.Dialer
}

// Accept implements Mode.
func (m *Terminate) Accept(conn *net.TCPConn) (net.Conn, Transport, error) {
	return serverHandshake(conn, m.TLS)
}

// Admit implements Mode: every client that completed the handshake.
func (m *Terminate) Admit(Transport) error { return nil }

// Dial implements Mode.
func (m *Terminate) Dial(ctx context.Context, timeout time.Duration, failed func(*TargetError)) (net.Conn, error) {
	return dialPlain(ctx, &m.Dialer, m.Target, timeout, failed)
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
	TLS *tls.Config // from ClientTLS; ServerName is set per target
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

	next    atomic.Uint64                    // round-robin start, for Spread
	configs atomic.Pointer[originateConfigs] // per-target TLS configs
	mu      sync.Mutex                       // guards downTil
	downTil map[string]time.Time             // targets held down after a failure
}

// originateConfigs are the per-target client configs derived from TLS for
// one roots bundle, built once per CA reload rather than per connection.
type originateConfigs struct {
	roots  *x509.CertPool
	target []*tls.Config
}

// Accept implements Mode.
func (m *Originate) Accept(conn *net.TCPConn) (net.Conn, Transport, error) {
	return conn, TransportPlaintext, nil
}

// Admit implements Mode: every plaintext client.
func (m *Originate) Admit(Transport) error { return nil }

// Dial implements Mode: targets are tried in order (from the next one in
// turn with Spread), skipping those that failed within targetHoldDown;
// when all of those fail too, the held-down ones get their chance.
func (m *Originate) Dial(ctx context.Context, timeout time.Duration, failed func(*TargetError)) (net.Conn, error) {
	n := len(m.Targets)
	start := 0
	if m.Spread {
		start = int((m.next.Add(1) - 1) % uint64(n))
	}
	now := time.Now()
	var errs []error
	var held []int
	try := func(i int) net.Conn {
		c, err := m.dialOne(ctx, i, timeout)
		m.note(m.Targets[i], err)
		if err == nil {
			return c
		}
		te := &TargetError{Target: m.Targets[i], Err: err}
		failed(te)
		errs = append(errs, te)
		return nil
	}
	for k := range n {
		i := (start + k) % n
		if m.heldDown(m.Targets[i], now) {
			held = append(held, i)
			continue
		}
		if c := try(i); c != nil {
			return c, nil
		}
		if ctx.Err() != nil {
			return nil, errors.Join(errs...)
		}
	}
	for _, i := range held {
		if c := try(i); c != nil {
			return c, nil
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

func (m *Originate) heldDown(target string, now time.Time) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return now.Before(m.downTil[target])
}

// note holds target down after a failure and lifts that on a success.
func (m *Originate) note(target string, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case err != nil:
		if m.downTil == nil {
			m.downTil = make(map[string]time.Time)
		}
		m.downTil[target] = time.Now().Add(targetHoldDown)
	case m.downTil != nil:
		delete(m.downTil, target)
	}
}

// config is target i's client config for the current roots.
func (m *Originate) config(i int) *tls.Config {
	roots := m.TLS.RootCAs
	if m.Roots != nil {
		roots = m.Roots.Pool()
	}
	cs := m.configs.Load()
	if cs == nil || cs.roots != roots {
		cs = &originateConfigs{roots: roots, target: make([]*tls.Config, len(m.Targets))}
		for j, target := range m.Targets {
			c := m.TLS.Clone()
			c.RootCAs = roots
			c.ServerName = m.ServerName
			if c.ServerName == "" {
				c.ServerName, _, _ = net.SplitHostPort(target)
			}
			cs.target[j] = c
		}
		m.configs.Store(cs)
	}
	return cs.target[i]
}

func (m *Originate) dialOne(ctx context.Context, i int, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	raw, err := m.Dialer.DialContext(ctx, "tcp", m.Targets[i])
	if err != nil {
		return nil, err
	}
	tcp := raw.(*net.TCPConn)
	d, _ := ctx.Deadline()
	tcp.SetDeadline(d)
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
	Target         string
	AllowPlaintext bool
	Dialer         net.Dialer
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
func (m *Dual) Accept(conn *net.TCPConn) (net.Conn, Transport, error) {
	first, err := peekFirst(conn)
	if err != nil {
		return nil, "", err
	}
	switch Sniff(first) {
	case ProtocolTLS:
		return serverHandshake(conn, m.TLS)
	case ProtocolHTTP:
		if err := m.Admit(TransportPlaintext); err != nil {
			conn.SetWriteDeadline(time.Now().Add(time.Second))
			conn.Write([]byte(plaintextRefusal))
			return nil, TransportPlaintext, err
		}
		return conn, TransportPlaintext, nil
	default:
		return nil, "", errUnknownProtocol
	}
}

// Admit implements Mode: TLS always, plaintext while AllowPlaintext.
func (m *Dual) Admit(t Transport) error {
	if t == TransportPlaintext && !m.AllowPlaintext {
		return ErrPlaintextRefused
	}
	return nil
}

// Dial implements Mode.
func (m *Dual) Dial(ctx context.Context, timeout time.Duration, failed func(*TargetError)) (net.Conn, error) {
	return dialPlain(ctx, &m.Dialer, m.Target, timeout, failed)
}

// TargetError is a failed connection to one target.
type TargetError struct {
	Target string
	Err    error
}

func (e *TargetError) Error() string { return "target " + e.Target + ": " + e.Err.Error() }
func (e *TargetError) Unwrap() error { return e.Err }

func dialPlain(ctx context.Context, d *net.Dialer, target string, timeout time.Duration, failed func(*TargetError)) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", target)
	if err != nil {
		te := &TargetError{Target: target, Err: err}
		failed(te)
		return nil, te
	}
	return c, nil
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
func serverHandshake(conn *net.TCPConn, cfg *tls.Config) (net.Conn, Transport, error) {
	g := &gatedConn{TCPConn: conn}
	tc := tls.Server(g, cfg)
	if err := tc.Handshake(); err != nil {
		if a, ok := g.sentAlert(); ok {
			err = fmt.Errorf("%w%.0w", err, a)
		}
		return nil, TransportTLS, err
	}
	return tc, TransportTLS, nil
}
