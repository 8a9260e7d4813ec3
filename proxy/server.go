package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Options configure a Server.
type Options struct {
	Name string // listener name in metrics and logs
	Mode Mode
	// MaxConns caps concurrent client connections; beyond it a new one is
	// closed at once and counted. 0 means no cap.
	MaxConns int
	// HandshakeTimeout bounds the TLS handshake, the sniff and the read of
	// the agent's upgrade request, so a slowloris client is cut off.
	HandshakeTimeout time.Duration
	// IdleTimeout closes a relayed connection that moved no byte in either
	// direction for this long. 0 means never.
	IdleTimeout time.Duration
	// ParkAfter is how long a relayed connection must be idle before its
	// two goroutines are released until data arrives (see parkingLot).
	// Default DefaultParkAfter; negative never parks.
	ParkAfter time.Duration
	// DialTimeout bounds connecting (and, for originate, the TLS
	// handshake) to each target tried.
	DialTimeout time.Duration
	// AgentHeaders reads the client's first HTTP request head to learn a
	// Sensu agent's name and namespace; the bytes go to the target as is.
	AgentHeaders bool
	// Identity binds each TLS client's certificate to the agent its
	// upgrade request names (see AgentIdentity); the head is then read
	// whatever AgentHeaders says, and a client that does not match gets a
	// 403 before a byte reaches the target.
	Identity AgentIdentity
	// Deny refuses listed certificate serials and agents, and closes their
	// open sessions when the list changes; nil denies nothing.
	Deny    *DenyList
	Metrics *Metrics // nil registers on a private registry
	Log     *slog.Logger
}

// Default timeouts.
const (
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultDialTimeout      = 5 * time.Second
	DefaultParkAfter        = 2 * time.Second
)

func (o Options) withDefaults() Options {
	if o.HandshakeTimeout <= 0 {
		o.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if o.ParkAfter == 0 {
		o.ParkAfter = DefaultParkAfter
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = DefaultDialTimeout
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	return o
}

// Server accepts client connections and relays them through its Mode.
type Server struct {
	// opt is swapped whole by Update; a connection uses the Options it
	// was accepted under until it relays.
	opt    atomic.Pointer[Options]
	name   string
	log    *slog.Logger
	m      *listenerMetrics
	agents agentBook
	// certRefusals and agentRefusals rate-limit the log lines of refused
	// client certificates (mTLS) and of agents refused by identity binding.
	certRefusals, agentRefusals rateLog
	deny                        denyFollower

	open     atomic.Int64
	draining atomic.Bool
	now      atomic.Int64 // coarse clock (unix ns) for idle tracking, ticked by the sweeper
	wg       sync.WaitGroup
	// cut ends when Shutdown's deadline passes: connections still dialing
	// try no further target.
	cut    context.Context
	cutAll context.CancelFunc

	mu        sync.Mutex
	conns     map[*proxiedConn]struct{}
	listeners map[net.Listener]struct{}
	sweeping  bool
	stop      chan struct{}
}

// proxiedConn is one client connection and, once dialed, its target.
type proxiedConn struct {
	client *net.TCPConn
	// peer is how the client came in, written once before admitted is set
	// (and read only after it is).
	peer       Peer
	admitted   atomic.Bool
	target     atomic.Pointer[net.TCPConn]
	relay      atomic.Pointer[relayConn] // set once relaying
	lastActive atomic.Int64
	// hello is the agent the client's upgrade request named, once read.
	hello atomic.Pointer[AgentHello]
}

func (pc *proxiedConn) close() {
	pc.client.Close()
	if t := pc.target.Load(); t != nil {
		t.Close()
	}
	if rc := pc.relay.Load(); rc != nil {
		rc.close()
	}
}

// New returns a Server; call Serve to start it.
func New(opt Options) (*Server, error) {
	if opt.Mode == nil {
		return nil, errors.New("proxy: no mode")
	}
	if opt.Metrics == nil {
		m, err := NewMetrics(prometheus.NewRegistry())
		if err != nil {
			return nil, err
		}
		opt.Metrics = m
	}
	return newServer(opt), nil
}

// newServer is New for Options with a Mode and Metrics.
func newServer(opt Options) *Server {
	opt = opt.withDefaults()
	s := &Server{
		name:          opt.Name,
		log:           opt.Log,
		m:             opt.Metrics.forListener(opt.Name),
		conns:         make(map[*proxiedConn]struct{}),
		listeners:     make(map[net.Listener]struct{}),
		stop:          make(chan struct{}),
		certRefusals:  rateLog{every: refusalLogInterval},
		agentRefusals: rateLog{every: refusalLogEvery},
	}
	s.cut, s.cutAll = context.WithCancel(context.Background())
	s.opt.Store(&opt)
	s.now.Store(time.Now().UnixNano())
	return s
}

// Update moves a running server onto opt's Mode, limits and timeouts
// (Name, ParkAfter, Metrics and Log stay): new connections get them at
// once, open sessions keep relaying, except those the new Mode no longer
// admits, which are closed: plaintext on a dual listener that stopped
// allowing it, and TLS clients whose certificate the new client CA or
// allow-lists refuse (or that have none, once mTLS is on). It returns how
// many it closed.
func (s *Server) Update(opt Options) int {
	cur := s.options()
	opt = opt.withDefaults()
	opt.Name, opt.ParkAfter, opt.Metrics, opt.Log = cur.Name, cur.ParkAfter, cur.Metrics, cur.Log
	s.opt.Store(&opt)
	s.followDeny()
	return s.closeRefused(&opt)
}

// closeRefused closes the admitted sessions opt refuses and returns how
// many.
func (s *Server) closeRefused(opt *Options) int {
	s.mu.Lock()
	admitted := make([]*proxiedConn, 0, len(s.conns))
	for pc := range s.conns {
		if pc.admitted.Load() {
			admitted = append(admitted, pc)
		}
	}
	s.mu.Unlock()
	// Checked outside s.mu: verifying many client chains takes a while.
	closed := 0
	for _, pc := range admitted {
		if opt.Mode.Admit(pc.peer) != nil || opt.keeps(pc) != nil {
			pc.close()
			closed++
		}
	}
	return closed
}

func (s *Server) options() *Options { return s.opt.Load() }

// admit publishes how pc's client came in and, when an Update replaced the
// Options it was accepted under, checks it against the new Mode. Update
// stores its Options before it reads the published peers, so every client
// is checked by one side or the other, with no lock on this path.
func (s *Server) admit(pc *proxiedConn, p Peer, accepted *Options) error {
	pc.peer = p
	pc.admitted.Store(true)
	if now := s.options(); now != accepted {
		return now.Mode.Admit(p)
	}
	return nil
}

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("proxy: server closed")

// Serve accepts connections on ln until Shutdown, Detach of ln, or a
// listener error.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.draining.Load() {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	if !s.sweeping {
		s.sweeping = true
		go s.sweep()
	}
	s.mu.Unlock()
	s.followDeny()
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			_, serving := s.listeners[ln]
			s.mu.Unlock()
			if s.draining.Load() || !serving {
				return ErrServerClosed
			}
			// Out of file descriptors and the like: keep serving
			// open connections and retry, as net/http does.
			if isTimeout(err) || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log.Warn("accept failed; retrying", "listener", s.name, "err", err, "in", backoff)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		tcp, ok := c.(*net.TCPConn)
		if !ok {
			c.Close()
			continue
		}
		lot.accepted(s.now.Load())
		if limit := s.options().MaxConns; limit > 0 && s.open.Load() >= int64(limit) {
			s.m.refusedLimit.Inc()
			tcp.Close()
			continue
		}
		s.open.Add(1)
		s.m.open.Inc()
		s.wg.Add(1)
		go s.handle(tcp)
	}
}

// Detach stops accepting on ln and closes it, leaving open sessions
// alone; Serve on ln returns ErrServerClosed.
func (s *Server) Detach(ln net.Listener) {
	s.mu.Lock()
	delete(s.listeners, ln)
	s.mu.Unlock()
	ln.Close()
}

// handle completes the client side, dials the target and starts the relay;
// it returns as soon as the relay runs so its deep handshake stack is not
// kept for the life of an idle connection.
func (s *Server) handle(client *net.TCPConn) {
	opt := s.options()
	pc := &proxiedConn{client: client}
	s.track(pc)
	client.SetDeadline(time.Now().Add(opt.HandshakeTimeout))
	cconn, peer, err := opt.Mode.Accept(client)
	if err == nil {
		err = s.admit(pc, peer, opt)
	}
	if err != nil {
		reason := handshakeReason(err)
		s.m.handshakeFailed(reason)
		if mTLSRefusals[reason] {
			s.certRefusals.log(s.log, slog.LevelWarn, time.Now(), "proxy refused a client certificate (mTLS)",
				"listener", s.name, "remote", client.RemoteAddr().String(), "reason", reason, "error", err)
		} else {
			s.log.Debug("client handshake failed", "listener", s.name, "remote", client.RemoteAddr(), "reason", reason, "err", err)
		}
		s.end(pc)
		return
	}
	readsHead := opt.AgentHeaders || opt.Identity != IdentityNone
	if err := opt.Deny.denies(peer.leaf(), nil); err != nil && !readsHead {
		// Answered after the request, as HTTP clients expect (bind
		// refuses the same way where the head is read anyway).
		readRequestHead(cconn)
		s.refuse(pc, cconn, peer, nil, err)
		return
	}
	var replay, early []byte
	if readsHead {
		read, headLen, err := readRequestHead(cconn)
		// A head still incomplete at the handshake timeout is a slowloris,
		// not a client to relay; one that ended early is passed on as is.
		if err != nil && (len(read) == 0 || isTimeout(err)) {
			s.m.handshakeFailed(handshakeReason(err))
			s.end(pc)
			return
		}
		var hello *AgentHello
		if headLen > 0 {
			if h, err := ParseAgentHello(read[:headLen]); err == nil {
				hello = &h
				pc.hello.Store(hello)
				tlsN, plainN := s.agents.record(s.name, h, peer.Transport, time.Now())
				s.m.agentsSeen(TransportTLS, tlsN)
				s.m.agentsSeen(TransportPlaintext, plainN)
			}
		}
		if err := opt.bind(peer, hello); err != nil {
			s.refuse(pc, cconn, peer, hello, err)
			return
		}
		replay = read
		if opt.Identity != IdentityNone {
			// Bytes after the bound request go only once the target
			// switched protocols (see awaitUpgrade).
			replay, early = read[:headLen], read[headLen:]
		}
	}
	client.SetDeadline(time.Time{})

	tconn, err := opt.Mode.Dial(s.cut, opt.DialTimeout, s.targetFailed)
	if err != nil {
		s.log.Warn("target unreachable; closing client", "listener", s.name, "remote", client.RemoteAddr(), "err", err)
		if tc, ok := cconn.(*tls.Conn); ok {
			// close_notify, so the client sees a clean end, not a reset.
			client.SetWriteDeadline(time.Now().Add(time.Second))
			tc.Close()
		}
		s.end(pc)
		return
	}
	if peer.Transport == TransportTLS {
		s.m.totalTLS.Inc()
	} else {
		s.m.totalPlain.Inc()
	}
	if opt.Identity != IdentityNone {
		if !s.awaitUpgrade(pc, cconn, tconn, replay, opt) {
			return
		}
		replay = early
	}
	cs, ts, err := s.sides(cconn, tconn, replay)
	if err != nil {
		tconn.Close()
		s.log.Warn("relay setup failed", "listener", s.name, "err", err)
		s.end(pc)
		return
	}
	pc.target.Store(ts.tcp)
	s.startRelay(pc, cs, ts)
	s.recheck(pc, opt)
}

// sides prepares both ends for the relay and replays what was read from
// the client while learning who it is.
func (s *Server) sides(cconn, tconn net.Conn, replay []byte) (cs, ts *side, err error) {
	if cs, err = newSide(cconn); err != nil {
		return nil, nil, err
	}
	if ts, err = newSide(tconn); err != nil {
		return nil, nil, err
	}
	if len(replay) > 0 {
		if _, err := tconn.Write(replay); err != nil {
			return nil, nil, err
		}
		s.m.up.Add(float64(len(replay)))
	}
	return cs, ts, nil
}

func (s *Server) startRelay(pc *proxiedConn, cs, ts *side) {
	pc.lastActive.Store(s.now.Load())
	up, down := s.m.up, s.m.down
	rc := startRelay(cs, ts,
		func(n int) { pc.lastActive.Store(s.now.Load()); up.Add(float64(n)) },
		func(n int) { pc.lastActive.Store(s.now.Load()); down.Add(float64(n)) },
		func() { s.end(pc) })
	pc.relay.Store(rc)
}

func (s *Server) track(pc *proxiedConn) {
	s.mu.Lock()
	s.conns[pc] = struct{}{}
	s.mu.Unlock()
	if s.draining.Load() {
		// Shutdown may have closed everything before this one was
		// tracked; do not let it outlive the drain.
		select {
		case <-s.stop:
			pc.close()
		default:
		}
	}
}

func (s *Server) end(pc *proxiedConn) {
	pc.close()
	s.mu.Lock()
	delete(s.conns, pc)
	s.mu.Unlock()
	s.open.Add(-1)
	s.m.open.Dec()
	s.wg.Done()
}

func (s *Server) targetFailed(te *TargetError) {
	s.m.targetFailed(te.Target)
	s.log.Debug("target failed", "listener", s.name, "target", te.Target, "err", te.Err)
}

// sweep ticks the coarse clock, parks connections idle longer than
// ParkAfter and closes those idle longer than IdleTimeout. One ticker per
// listener is cheaper than a timer per connection reset on every read.
func (s *Server) sweep() {
	tickFor := func(opt *Options) time.Duration {
		tick := time.Second
		for _, d := range []time.Duration{opt.IdleTimeout, opt.ParkAfter} {
			if d > 0 {
				tick = min(tick, max(d/4, 10*time.Millisecond))
			}
		}
		return tick
	}
	tick := tickFor(s.options())
	t := time.NewTicker(tick)
	defer t.Stop()
	var expired []*proxiedConn
	for {
		select {
		case <-s.stop:
			return
		case now := <-t.C:
			opt := s.options()
			if d := tickFor(opt); d != tick {
				tick = d
				t.Reset(tick)
			}
			idle, park := opt.IdleTimeout, opt.ParkAfter
			ns := now.UnixNano()
			s.now.Store(ns)
			expired = expired[:0]
			s.mu.Lock()
			for pc := range s.conns {
				rc := pc.relay.Load()
				if rc == nil {
					continue
				}
				quiet := time.Duration(ns - pc.lastActive.Load())
				switch {
				case idle > 0 && quiet > idle:
					expired = append(expired, pc)
				case park > 0 && quiet > park:
					rc.park()
				}
			}
			s.mu.Unlock()
			// Closing finishes parked pumps, which takes s.mu in end.
			for _, pc := range expired {
				pc.close()
			}
			lot.releaseMemory(ns)
		}
	}
}

// Open is the number of client connections open now.
func (s *Server) Open() int { return int(s.open.Load()) }

// Agents lists the Sensu agents this listener has seen.
func (s *Server) Agents() []AgentSeen { return s.agents.snapshot() }

// Shutdown stops accepting, lets open connections finish until ctx ends,
// then closes the rest (a target dial under way still runs to its dial
// timeout). It returns ctx's error when it had to cut connections.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if !s.draining.Swap(true) {
		close(s.stop)
	}
	for ln := range s.listeners {
		ln.Close()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.cutAll()
		s.mu.Lock()
		open := make([]*proxiedConn, 0, len(s.conns))
		for pc := range s.conns {
			open = append(open, pc)
		}
		s.mu.Unlock()
		for _, pc := range open {
			pc.close()
		}
		<-done
		return ctx.Err()
	}
}

// isTimeout reports a deadline that passed; its error target escapes, so
// it is called only once there is an error.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// errNoClientCertificate fails a handshake on an mTLS listener whose
// client sent no certificate (checked in VerifyConnection, so it is told
// apart by its type).
var errNoClientCertificate = errors.New("client sent no certificate; this listener requires one (mTLS)")

// handshakeReason is the metric label for a failed client handshake. It
// goes by error types and by the alert the server sent; crypto/tls gives
// most failures no type of their own but does send a specific alert.
func handshakeReason(err error) string {
	var ne net.Error
	var op *net.OpError
	var alert tls.AlertError
	switch {
	case errors.Is(err, ErrPlaintextRefused):
		return "plaintext-refused"
	case errors.Is(err, errUnknownProtocol):
		return "unknown-protocol"
	case errors.Is(err, ErrClientNotAllowed):
		return "client-not-allowed"
	case errors.Is(err, errNoClientCertificate):
		return "no-client-certificate"
	case errors.Is(err, errNoCertificateYet):
		return "certificate-pending"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET):
		return "client-closed"
	case errors.As(err, new(tls.RecordHeaderError)):
		return "not-tls"
	case errors.As(err, new(*tls.CertificateVerificationError)):
		return "bad-client-certificate"
	case errors.As(err, &op) && op.Op == "remote error":
		return "client-alert"
	case errors.As(err, &alert):
		switch alert {
		case alertProtocolVersion, alertInappropriateFallback:
			return "protocol-version"
		case alertHandshakeFailure, alertInsufficientSecurity:
			return "no-shared-cipher"
		case alertNoApplicationProtocol:
			return "no-shared-alpn"
		}
	}
	return "other"
}

// TLS alert descriptions (RFC 8446, section 6) that name a handshake
// failure's reason.
const (
	alertHandshakeFailure      tls.AlertError = 40
	alertProtocolVersion       tls.AlertError = 70
	alertInsufficientSecurity  tls.AlertError = 71
	alertInappropriateFallback tls.AlertError = 86
	alertNoApplicationProtocol tls.AlertError = 120
)
