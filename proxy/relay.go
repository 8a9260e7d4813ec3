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
	"unsafe"

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
// like any socket. Once relaying it is only read from inside the pump's
// RawConn callback, on the descriptor that callback was given, and never
// blocks: when the socket is empty it returns errWouldBlock, the callback
// returns false and the runtime waits for readability with no buffer
// held. (Reading on to EAGAIN after a short read is required: a FIN that
// arrived with the data raises no further event.)
type gatedConn struct {
	*net.TCPConn
	relaying bool
	w        *rawWriter // writes to TCPConn while relaying
	fd       int        // the descriptor, valid inside the pump's callback
	// tail is the end of the last handshake write: after a failed
	// handshake, the alert record the TLS stack sent, if it was in the clear.
	tail  [alertRecordLen]byte
	tailN uint8
}

// alertRecordLen is a plaintext TLS alert record: type 21, version,
// length 2, level, description.
const alertRecordLen = 7

func (g *gatedConn) Write(p []byte) (int, error) {
	if !g.relaying {
		g.tailN = uint8(copy(g.tail[:], p[max(0, len(p)-alertRecordLen):]))
		return g.TCPConn.Write(p)
	}
	return g.w.Write(p)
}

// sentAlert is the alert the last handshake write ended with. Alerts sent
// once the handshake is encrypted (TLS 1.3 after the ServerHello) are not
// seen here.
func (g *gatedConn) sentAlert() (tls.AlertError, bool) {
	t := g.tail
	if g.tailN != alertRecordLen || t[0] != 21 || t[1] != 3 || t[3] != 0 || t[4] != 2 {
		return 0, false
	}
	return tls.AlertError(t[6]), true
}

func (g *gatedConn) Read(p []byte) (int, error) {
	if !g.relaying {
		return g.TCPConn.Read(p)
	}
	n, err := readOnce(uintptr(g.fd), p)
	if err == syscall.EAGAIN {
		return 0, errWouldBlock
	}
	return n, err
}

// readOnce is one read(2) that maps a zero-byte read to io.EOF.
//
// It is a raw syscall: the descriptor is non-blocking, so the read cannot
// block, and skipping the runtime's syscall bookkeeping (entersyscall,
// which wakes the sysmon thread when the process was idle) saves a
// context switch on most relayed records. It runs only inside a RawConn
// callback, which keeps the descriptor open meanwhile.
func readOnce(fd uintptr, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		r, _, errno := unix.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		n := int(r)
		switch {
		case errno == syscall.EINTR:
			continue
		case errno != 0:
			return 0, errno
		case n == 0:
			return 0, io.EOF
		}
		return n, nil
	}
}

// rawWriter writes all of a buffer to one socket, waiting in the netpoller
// while the socket is full. Like readOnce it makes raw write(2) calls,
// which cannot block on the non-blocking descriptor; RawConn.Write keeps
// the descriptor open and honours the write deadline. The callback is bound
// once, so a write allocates nothing. Writes to one socket never overlap:
// tls.Conn serialises its own, and a plaintext side has one pump writing.
type rawWriter struct {
	raw  syscall.RawConn
	step func(fd uintptr) bool // w.writeSome, bound once
	p    []byte
	n    int
	err  error
}

func newRawWriter(raw syscall.RawConn) *rawWriter {
	w := &rawWriter{raw: raw}
	w.step = w.writeSome
	return w
}

func (w *rawWriter) Write(p []byte) (int, error) {
	w.p, w.n, w.err = p, 0, nil
	err := w.raw.Write(w.step)
	n, werr := w.n, w.err
	w.p, w.err = nil, nil
	if werr != nil {
		return n, werr
	}
	return n, err
}

func (w *rawWriter) writeSome(fd uintptr) bool {
	for w.n < len(w.p) {
		r, _, errno := unix.RawSyscall(unix.SYS_WRITE, fd, uintptr(unsafe.Pointer(&w.p[w.n])), uintptr(len(w.p)-w.n))
		switch errno {
		case 0:
			w.n += int(r)
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			w.err = errno
			return true
		}
	}
	return true
}

// side is one end of a relayed connection.
type side struct {
	conn net.Conn        // where bytes are read and written: *tls.Conn or *net.TCPConn
	tcp  *net.TCPConn    // the socket under conn
	raw  syscall.RawConn // tcp's descriptor, to wait for data with no buffer held
	tls  *tls.Conn       // non-nil when conn is TLS
	gate *gatedConn      // the socket under tls, when conn is TLS
	w    *rawWriter      // writes to tcp (under tls, when conn is TLS)
}

func newSide(c net.Conn) (*side, error) {
	s := &side{conn: c}
	switch c := c.(type) {
	case *tls.Conn:
		s.tls = c
		s.gate = c.NetConn().(*gatedConn)
		s.tcp = s.gate.TCPConn
	case *net.TCPConn:
		s.tcp = c
	default:
		return nil, errors.New("proxy: relay needs a TCP or TLS connection")
	}
	raw, err := s.tcp.SyscallConn()
	if err != nil {
		return nil, err
	}
	s.raw, s.w = raw, newRawWriter(raw)
	if s.gate != nil {
		s.gate.w = s.w
		s.gate.relaying = true
	}
	return s, nil
}

// write sends p to the side: through TLS, or straight to the socket.
func (s *side) write(p []byte) (int, error) {
	if s.tls != nil {
		return s.tls.Write(p)
	}
	return s.w.Write(p)
}

// closeWrite passes a half-close on: close_notify for TLS, then FIN.
func (s *side) closeWrite() {
	if s.tls != nil {
		s.tls.CloseWrite()
	}
	s.tcp.CloseWrite()
}

// pump moves bytes from src to dst until src ends or either side fails.
// Its whole loop runs inside one RawConn.Read callback on src: returning
// false from the callback waits for readability in the netpoller, and a
// pooled buffer is borrowed only while bytes move.
type pump struct {
	src, dst *side
	count    func(n int) // bytes moved, for metrics and idle tracking
	touch    func()      // marks the connection active
	finish   func(error) // called once when the pump stops for good
	// parkRequested is set by the sweeper when the connection has been
	// idle; parkID is the pump's key in the parking lot (guarded by lot.mu).
	parkRequested atomic.Bool
	parkID        uint64
	moveFn        func(fd uintptr) bool // plainMove or tlsMove, bound once
	err           error                 // why moveFn stopped: io.EOF or a failure
}

func newPump(src, dst *side, count func(int)) *pump {
	p := &pump{src: src, dst: dst, count: count, touch: func() { count(0) }}
	if src.tls != nil {
		p.moveFn = p.tlsMove
	} else {
		p.moveFn = p.plainMove
	}
	return p
}

// run relays until src reports EOF (then the half-close is passed on and
// nil returned), an error, or a park request's deadline.
func (p *pump) run() error {
	p.err = nil
	if err := p.src.raw.Read(p.moveFn); err != nil {
		return err
	}
	return p.ended(p.err)
}

// plainMove reads the plaintext socket and writes to dst until it is empty.
func (p *pump) plainMove(fd uintptr) bool {
	for {
		bp := bufPool.Get().(*[]byte)
		buf := *bp
		n, err := readOnce(fd, buf)
		if err == syscall.EAGAIN {
			bufPool.Put(bp)
			return false
		}
		if n > 0 {
			_, err = p.dst.write(buf[:n])
			p.count(n)
		}
		bufPool.Put(bp)
		if err != nil {
			p.err = err
			return true
		}
	}
}

// tlsMove reads every record it can complete without blocking and writes
// the plaintext to dst.
func (p *pump) tlsMove(fd uintptr) bool {
	gate := p.src.gate
	gate.fd = int(fd)
	for {
		bp := bufPool.Get().(*[]byte)
		n, err := p.src.tls.Read(*bp)
		if n > 0 {
			_, werr := p.dst.write((*bp)[:n])
			p.count(n)
			if werr != nil {
				err = werr
			}
		}
		bufPool.Put(bp)
		if err == errWouldBlock {
			return false
		}
		if err != nil {
			p.err = err
			return true
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
