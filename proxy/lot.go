package proxy

import (
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// parkingLot holds relay directions that have been idle long enough to
// give up their goroutine. A goroutine's stack never shrinks below 4 kB
// once it has run crypto, so two per connection would be most of an idle
// agent session's memory; parked, a direction costs one epoll entry. One
// goroutine waits on the lot's epoll set and starts a fresh goroutine for
// a direction whose socket turns readable.
//
// Ownership: whoever removes a pump from parked (the waker, or a closer
// via evict) is the only one that continues or finishes it.
type parkingLot struct {
	once sync.Once
	dead atomic.Bool // the waiting goroutine stopped
	// newlyParked counts parks since memory was last given back,
	// lastAccept is when any listener last accepted (coarse unix ns); see
	// releaseMemory.
	newlyParked atomic.Int64
	lastAccept  atomic.Int64
	lastRelease atomic.Int64 // unix ns
	epfd        int
	err         error
	mu          sync.Mutex
	next        uint64
	parked      map[uint64]*pump
}

// lot is process-wide: the epoll set and its goroutine are created on
// first use and live as long as the process.
var lot = parkingLot{parked: make(map[uint64]*pump)}

func (l *parkingLot) start() error {
	l.once.Do(func() {
		l.epfd, l.err = unix.EpollCreate1(unix.EPOLL_CLOEXEC)
		if l.err != nil {
			return
		}
		go l.wait()
	})
	return l.err
}

// park registers p's source socket; when it returns true the caller's
// goroutine must end. The registration is level-triggered, so data that
// arrived while the pump was on its way here wakes it at once. It returns
// false when the lot cannot be used; the pump then keeps its goroutine.
func (l *parkingLot) park(p *pump) bool {
	if l.start() != nil || l.dead.Load() {
		return false
	}
	l.newlyParked.Add(1)
	l.mu.Lock()
	l.next++
	id := l.next
	p.parkID = id
	l.parked[id] = p
	l.mu.Unlock()
	var ctlErr error
	err := p.src.raw.Control(func(fd uintptr) {
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT, Fd: int32(uint32(id)), Pad: int32(uint32(id >> 32))}
		ctlErr = unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, int(fd), &ev)
	})
	if err == nil {
		err = ctlErr
	}
	if err != nil && l.take(id) != nil {
		p.finish(err)
	}
	return true
}

// take removes the pump parked under id; nil when someone else has it.
func (l *parkingLot) take(id uint64) *pump {
	l.mu.Lock()
	defer l.mu.Unlock()
	p := l.parked[id]
	if p != nil {
		delete(l.parked, id)
		p.parkID = 0
	}
	return p
}

// evict removes p if it is parked and reports whether the caller now owns
// finishing it. Closing its socket already dropped the epoll entry.
func (l *parkingLot) evict(p *pump) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if p.parkID == 0 || l.parked[p.parkID] != p {
		return false
	}
	delete(l.parked, p.parkID)
	p.parkID = 0
	return true
}

func (l *parkingLot) wait() {
	events := make([]unix.EpollEvent, 256)
	for {
		n, err := unix.EpollWait(l.epfd, events, -1)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			slog.Error("proxy parking lot stopped; idle connections keep their goroutines from now on", "err", err)
			l.dead.Store(true)
			return
		}
		for _, ev := range events[:n] {
			p := l.take(uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32)
			if p == nil {
				continue
			}
			p.src.raw.Control(func(fd uintptr) {
				unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, int(fd), nil)
			})
			go p.resume()
		}
	}
}

// Thresholds for releaseMemory.
const (
	releaseAfterParks = 256
	releaseQuiet      = 2 * time.Second
	releaseInterval   = 30 * time.Second
)

// accepted notes that a listener accepted a connection at now (unix ns).
// The store is skipped while the value is current, so a busy accept loop
// does not keep writing one shared cache line.
func (l *parkingLot) accepted(now int64) {
	if l.lastAccept.Load() != now {
		l.lastAccept.Store(now)
	}
}

// releaseMemory returns the heap freed by a burst of connections to the
// OS once they have gone idle. Handshakes leave garbage and the stacks of
// the goroutines parking just gave up; with the default GC pacing the
// process would otherwise keep about twice the live heap resident for as
// long as the sessions stay idle, which for thousands of idle agents is
// most of the memory. It runs after many parks, only once no listener has
// accepted a connection for releaseQuiet, and at most every
// releaseInterval: a proxy that keeps accepting never pays for the forced
// collection, and there the regular GC and scavenger keep the heap in check.
func (l *parkingLot) releaseMemory(now int64) {
	if l.newlyParked.Load() < releaseAfterParks || now-l.lastAccept.Load() < int64(releaseQuiet) ||
		now-l.lastRelease.Load() < int64(releaseInterval) {
		return
	}
	l.newlyParked.Store(0)
	l.lastRelease.Store(now)
	go debug.FreeOSMemory()
}
