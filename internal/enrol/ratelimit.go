package enrol

import (
	"math"
	"net"
	"sync"
	"time"
)

// Enrolment rate per client address: each /v1/enrol costs the Sensu API
// one password check (bcrypt), so one address may not make the backend
// check passwords faster than this. The burst lets a few agents behind one
// address enrol together.
const (
	EnrolRate  = 1.0 // requests per second, refilled continuously
	EnrolBurst = 10
)

// maxClients bounds the limiter's table; beyond it, the buckets that have
// refilled (the same as no bucket) are dropped.
const maxClients = 4096

// Limiter is a token bucket per client address.
type Limiter struct {
	rate  float64 // tokens per second
	burst float64
	now   func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

// NewLimiter allows each address burst requests at once, then rate per
// second.
func NewLimiter(rate float64, burst int, now func() time.Time) *Limiter {
	return &Limiter{rate: rate, burst: float64(burst), now: now, buckets: map[string]*bucket{}}
}

// Allow takes a token for the client at remoteAddr (host:port, as
// http.Request.RemoteAddr); when none is left it returns how long until
// one is.
func (l *Limiter) Allow(remoteAddr string) (ok bool, retryAfter time.Duration) {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[host]
	if b == nil {
		if len(l.buckets) >= maxClients {
			l.dropRefilled(now)
		}
		b = &bucket{tokens: l.burst, at: now}
		l.buckets[host] = b
	}
	l.refill(b, now)
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	wait := time.Duration(math.Ceil((1 - b.tokens) / l.rate * float64(time.Second)))
	return false, wait
}

func (l *Limiter) refill(b *bucket, now time.Time) {
	if elapsed := now.Sub(b.at).Seconds(); elapsed > 0 {
		b.tokens = min(l.burst, b.tokens+elapsed*l.rate)
	}
	b.at = now
}

func (l *Limiter) dropRefilled(now time.Time) {
	for host, b := range l.buckets {
		if l.refill(b, now); b.tokens >= l.burst {
			delete(l.buckets, host)
		}
	}
}
