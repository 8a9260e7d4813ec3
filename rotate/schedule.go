package rotate

import (
	"crypto/x509"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// processSeed makes this process's jitter its own: other nodes (and this
// one after a restart) draw other values, so a fleet still spreads out.
var processSeed = rand.Uint64()

// jitterShare is a certificate's place in the jitter window, in [0, 1).
// Certificates that list the same services share it, so when they were
// issued together they come due together and the services act once on the
// batch (the dispatcher coalesces changes seconds apart, not minutes). A
// certificate without services has a share of its own.
func jitterShare(seed uint64, name string, services []string) float64 {
	key := "certificate\x00" + name
	if len(services) > 0 {
		set := slices.Clone(services)
		slices.Sort(set)
		key = "services\x00" + strings.Join(slices.Compact(set), "\x00")
	}
	h := fnv.New64a()
	var b [8]byte
	for i := range b {
		b[i] = byte(seed >> (8 * i))
	}
	h.Write(b[:])
	h.Write([]byte(key))
	return float64(h.Sum64()>>11) / (1 << 53)
}

// RenewAt is when leaf should be renewed under p: Before ahead of expiry,
// moved earlier by the plan's share of the jitter so a fleet spreads out.
// The jitter is capped at a tenth of the renew-before window so a
// short-lived certificate is not renewed the moment it is issued.
func (p Plan) RenewAt(leaf *x509.Certificate) time.Time {
	life := p.lifetimeOf(leaf)
	before := p.Before.Duration
	if p.Before.Ratio > 0 {
		before = time.Duration(float64(life) * p.Before.Ratio)
	}
	if before >= life {
		before = life / 3
	}
	at := leaf.NotAfter.Add(-before)
	if j := min(p.Jitter, before/10); j > 0 {
		at = at.Add(-time.Duration(p.JitterShare * float64(j)))
	}
	return at
}

// lifetimeOf is the window a ratio of Before is taken over: the lifetime
// the plan asked for, when leaf's validity is longer. Issuers backdate
// NotBefore for clock skew (the local CA by 5 minutes), and that is no
// time the certificate was meant to serve: over it, a 5-minute certificate
// with before 33% would be renewed after 1m42s instead of 3m21s. A leaf
// shorter than asked (cut at its CA's expiry) is taken as it is.
func (p Plan) lifetimeOf(leaf *x509.Certificate) time.Duration {
	life := leaf.NotAfter.Sub(leaf.NotBefore)
	if p.Lifetime > 0 && p.Lifetime < life {
		return p.Lifetime
	}
	return life
}

// RetryAfter is the delay before the next attempt after failures
// consecutive failures: exponential from RetryMin, capped at RetryMax. In an
// emergency it stays at RetryMin.
func (p Plan) RetryAfter(failures int, notAfter time.Time, now time.Time) time.Duration {
	if p.inEmergency(notAfter, now) {
		return p.RetryMin
	}
	return p.backoff(failures)
}

// backoff is the exponential step alone, without RetryAfter's emergency
// floor (runner.fail uses it after a consumer's refusal).
func (p Plan) backoff(failures int) time.Duration {
	d := p.RetryMin
	for i := 1; i < failures && d < p.RetryMax; i++ {
		d *= 2
	}
	return min(d, p.RetryMax)
}

// inEmergency reports whether backing off is no longer affordable: there is
// no valid set at all (notAfter zero), less than Emergency is left, or less
// than one full backoff step (RetryMax) is left.
func (p Plan) inEmergency(notAfter, now time.Time) bool {
	left := notAfter.Sub(now)
	return notAfter.IsZero() || left < p.Emergency || left < p.RetryMax
}
