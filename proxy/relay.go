package proxy

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// relayBufSize holds one full TLS record of plaintext, so a TLS read never
// has to split a record across two reads.
const relayBufSize = 16 << 10

// bufPool lends relay buffers only while bytes move: an idle connection
// holds none.
var bufPool = sync.Pool{New: func() any { b := make([]byte, relayBufSize); return &b }}

// errWouldBlock is what a gatedConn returns instead of blocking. It is a
// temporary net.Error, which crypto/tls treats as retryable: a partial
// record stays buffered in the tls.Conn and the next Read continues it.
var errWouldBlock = wouldBlockError{}

type wouldBlockError struct{}

func (wouldBlockError) Error() string   { return "proxy: socket has no data now" }
func (wouldBlockError) Timeout() bool   { return true }
func (wouldBlockError) Temporary() bool { return true }

// gatedConn is the socket under a tls.Conn. During the handshake it reads
// like any socket. Once relaying, the pump decides per read whether an
// empty socket may block (while it waits for the next record holding
// only a one-byte buffer) or must return errWouldBlock (while it holds a
// pooled buffer).
type gatedConn struct {
	*net.TCPConn
	raw      syscall.RawConn
	relaying bool
	block    bool // set by the one goroutine that reads this conn
	n        int
	err      error
	p        []byte
	readFn   func(fd uintptr) bool
}

func (g *gatedConn) Read(p []byte) (int, error) {
	if !g.relaying {
		return g.TCPConn.Read(p)
	}
	g.p = p
	err := g.raw.Read(g.readFn)
	g.p = nil
	if err != nil {
		return 0, err
	}
	return g.n, g.err
}

func (g *gatedConn) startRelaying() error {
	raw, err := g.SyscallConn()
	if err != nil {
		return err
	}
	g.raw = raw
	g.readFn = func(fd uintptr) bool {
		g.n, g.err = readOnce(fd, g.p)
		if g.err == syscall.EAGAIN {
			if g.block {
				return false // wait in the netpoller, then read again
			}
			g.n, g.err = 0, errWouldBlock
		}
		return true
	}
	g.relaying = true
	return nil
}

// readOnce is one read(2) that maps a zero-byte read to io.EOF.
func readOnce(fd uintptr, p []byte) (int, error) {
	for {
		n, err := unix.Read(int(fd), p)
		switch {
		case err == syscall.EINTR:
			continue
		case err != nil:
			return 0, err
		case n == 0:
			return 0, io.EOF
		}
		return n, nil
	}
}

// side is one end of a relayed connection.
type side struct {
	conn net.Conn        // where bytes are read and written: *tls.Conn or *net.TCPConn
	tcp  *net.TCPConn    // the socket under conn
	raw  syscall.RawConn // tcp's descriptor, to wait for data with no buffer held
	tls  *tls.Conn       // non-nil when conn is TLS
	gate *gatedConn      // the socket under tls, when conn is TLS
}

func newSide(c net.Conn) (*side, error) {
	s := &side{conn: c}
	switch c := c.(type) {
	case *tls.Conn:
		s.tls = c
		s.gate = c.NetConn().(*gatedConn)
		s.tcp = s.gate.TCPConn
		if err := s.gate.startRelaying(); err != nil {
			return nil, err
		}
	case *net.TCPConn:
		s.tcp = c
	default:
		return nil, errors.New("proxy: relay needs a TCP or TLS connection")
	}
	raw, err := s.tcp.SyscallConn()
	if err != nil {
		return nil, err
	}
	s.raw = raw
	return s, nil
}

// closeWrite passes a half-close on: close_notify for TLS, then FIN.
func (s *side) closeWrite() {
	if s.tls != nil {
		s.tls.CloseWrite()
	}
	s.tcp.CloseWrite()
}

// pump moves bytes from src to dst until src ends or either side fails.
type pump struct {
	src, dst *side
	count    func(n int) // bytes moved, for metrics and idle tracking
	touch    func()      // marks the connection active
	finish   func(error) // called once when the pump stops for good
	// parkRequested is set by the sweeper when the connection has been
	// idle; parkID is the pump's key in the parking lot (guarded by lot.mu).
	parkRequested atomic.Bool
	parkID        uint64
	first         [1]byte // what a TLS pump waits with instead of a buffer
	// plaintext reads happen inside the RawConn callback so a buffer is
	// borrowed only once data is known to be there.
	buf    *[]byte
	n      int
	err    error
	readFn func(fd uintptr) bool
}

func newPump(src, dst *side, count func(int)) *pump {
	p := &pump{src: src, dst: dst, count: count, touch: func() { count(0) }}
	p.readFn = func(fd uintptr) bool {
		if p.buf == nil {
			p.buf = bufPool.Get().(*[]byte)
		}
		p.n, p.err = readOnce(fd, *p.buf)
		if p.err == syscall.EAGAIN {
			bufPool.Put(p.buf)
			p.buf = nil
			return false
		}
		return true
	}
	return p
}

// run relays until src reports EOF (then the half-close is passed on and
// nil returned) or an error.
func (p *pump) run() error {
	if p.src.tls != nil {
		return p.runTLS()
	}
	return p.runPlain()
}

func (p *pump) runPlain() error {
	for {
		if err := p.src.raw.Read(p.readFn); err != nil {
			return err
		}
		n, err := p.n, p.err
		if n > 0 {
			_, werr := p.dst.conn.Write((*p.buf)[:n])
			p.count(n)
			if werr != nil {
				err = werr
			}
		}
		if p.buf != nil {
			bufPool.Put(p.buf)
			p.buf = nil
		}
		if err != nil {
			return p.ended(err)
		}
	}
}

// runTLS waits for the next record with a one-byte read, so an idle wait
// holds no buffer and needs no extra syscall; the rest of the record is
// already decrypted inside the tls.Conn and is read into a pooled buffer
// without touching the socket.
func (p *pump) runTLS() error {
	gate := p.src.gate
	for {
		gate.block = true
		n, err := p.src.tls.Read(p.first[:])
		if n == 0 {
			return p.ended(err)
		}
		bp := bufPool.Get().(*[]byte)
		buf := *bp
		buf[0] = p.first[0]
		m := 0
		if err == nil {
			gate.block = false
			m, err = p.src.tls.Read(buf[1:])
			if err == errWouldBlock {
				err = nil
			}
		}
		_, werr := p.dst.conn.Write(buf[:1+m])
		bufPool.Put(bp)
		p.count(1 + m)
		if werr != nil {
			return werr
		}
		if err != nil {
			return p.ended(err)
		}
	}
}

// ended passes a clean end of src on as a half-close.
func (p *pump) ended(err error) error {
	if err == io.EOF {
		p.dst.closeWrite()
		return nil
	}
	return err
}

// relayConn is one relayed connection: two pumps, one per direction.
type relayConn struct {
	client, target *side
	pumps          [2]*pump
	left           atomic.Int32
	done           func()
}

// startRelay runs both pumps and calls done once both have stopped. A pump
// that fails (rather than seeing EOF) closes both sockets, which stops the
// other; an EOF only half-closes, so the other direction can finish.
func startRelay(client, target *side, up, down func(int), done func()) *relayConn {
	rc := &relayConn{client: client, target: target, done: done}
	rc.left.Store(2)
	rc.pumps[0] = newPump(client, target, up)
	rc.pumps[1] = newPump(target, client, down)
	for _, p := range rc.pumps {
		p.finish = rc.pumpDone
		go p.loop()
	}
	return rc
}

func (rc *relayConn) pumpDone(err error) {
	if err != nil {
		rc.close()
	}
	if rc.left.Add(-1) == 0 {
		rc.client.tcp.Close()
		rc.target.tcp.Close()
		rc.done()
	}
}

// close closes both sockets and finishes any pump parked without a
// goroutine, which nothing else would wake.
func (rc *relayConn) close() {
	rc.client.tcp.Close()
	rc.target.tcp.Close()
	for _, p := range rc.pumps {
		if lot.evict(p) {
			p.finish(net.ErrClosed)
		}
	}
}

// park asks both pumps to give up their goroutines until data arrives.
func (rc *relayConn) park() {
	for _, p := range rc.pumps {
		p.requestPark()
	}
}

// aLongTimeAgo is a read deadline that has passed: setting it wakes a
// pump waiting on its socket.
var aLongTimeAgo = time.Unix(1, 0)

// loop runs the pump until it ends, or until a park request interrupts
// its wait; then the pump moves to the parking lot and its goroutine ends.
func (p *pump) loop() {
	for {
		err := p.run()
		if err != nil && p.parkRequested.Load() && errors.Is(err, os.ErrDeadlineExceeded) {
			if lot.park(p) {
				return
			}
			p.unpark()
			continue
		}
		p.finish(err)
		return
	}
}

func (p *pump) requestPark() {
	if !p.parkRequested.Swap(true) {
		p.src.tcp.SetReadDeadline(aLongTimeAgo)
	}
}

// resume runs on a fresh goroutine once a parked pump's socket is
// readable (or closed).
func (p *pump) resume() {
	p.unpark()
	p.loop()
}

// unpark undoes requestPark; marking the connection active first keeps
// the sweeper from asking again straight away.
func (p *pump) unpark() {
	p.touch()
	p.src.tcp.SetReadDeadline(time.Time{})
	p.parkRequested.Store(false)
}
