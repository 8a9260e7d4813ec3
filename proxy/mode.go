package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
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
	// Dial opens the target side before ctx's deadline, reporting every
	// target that failed on the way (also those a fail-over recovered).
	Dial(ctx context.Context, failed func(*TargetError)) (net.Conn, error)
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

// Dial implements Mode.
func (m *Terminate) Dial(ctx context.Context, failed func(*TargetError)) (net.Conn, error) {
	return dialPlain(ctx, &m.Dialer, m.Target, failed)
}

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
	Dialer     net.Dialer
}

// Accept implements Mode.
func (m *Originate) Accept(conn *net.TCPConn) (net.Conn, Transport, error) {
	return conn, TransportPlaintext, nil
}

// Dial implements Mode: targets are tried in order, so the first is the
// preferred cluster member and the rest are fail-over.
func (m *Originate) Dial(ctx context.Context, failed func(*TargetError)) (net.Conn, error) {
	var errs []error
	for _, target := range m.Targets {
		c, err := m.dialOne(ctx, target)
		if err == nil {
			return c, nil
		}
		te := &TargetError{Target: target, Err: err}
		failed(te)
		errs = append(errs, te)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

func (m *Originate) dialOne(ctx context.Context, target string) (net.Conn, error) {
	raw, err := m.Dialer.DialContext(ctx, "tcp", target)
	if err != nil {
		return nil, err
	}
	tcp := raw.(*net.TCPConn)
	cfg := m.TLS.Clone()
	if m.Roots != nil {
		cfg.RootCAs = m.Roots.Pool()
	}
	cfg.ServerName = m.ServerName
	if cfg.ServerName == "" {
		host, _, _ := net.SplitHostPort(target)
		cfg.ServerName = host
	}
	if d, ok := ctx.Deadline(); ok {
		tcp.SetDeadline(d)
	}
	tc := tls.Client(&gatedConn{TCPConn: tcp}, cfg)
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
		if !m.AllowPlaintext {
			conn.SetWriteDeadline(time.Now().Add(time.Second))
			conn.Write([]byte(plaintextRefusal))
			return nil, TransportPlaintext, ErrPlaintextRefused
		}
		return conn, TransportPlaintext, nil
	default:
		return nil, "", errUnknownProtocol
	}
}

// Dial implements Mode.
func (m *Dual) Dial(ctx context.Context, failed func(*TargetError)) (net.Conn, error) {
	return dialPlain(ctx, &m.Dialer, m.Target, failed)
}

// serverHandshake runs under the deadline the Server set on conn rather
// than a context, which would cost a watcher goroutine per handshake.
// TargetError is a failed connection to one target.
type TargetError struct {
	Target string
	Err    error
}

func (e *TargetError) Error() string { return "target " + e.Target + ": " + e.Err.Error() }
func (e *TargetError) Unwrap() error { return e.Err }

func dialPlain(ctx context.Context, d *net.Dialer, target string, failed func(*TargetError)) (net.Conn, error) {
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

func serverHandshake(conn *net.TCPConn, cfg *tls.Config) (net.Conn, Transport, error) {
	tc := tls.Server(&gatedConn{TCPConn: conn}, cfg)
	if err := tc.Handshake(); err != nil {
		return nil, TransportTLS, err
	}
	return tc, TransportTLS, nil
}
