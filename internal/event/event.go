package event

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Reason says why a certificate set changed.
type Reason string

const (
	ReasonInitial  Reason = "initial"  // first issuance (missing or expired at start)
	ReasonReissue  Reason = "reissue"  // the set on disk had not expired but no longer fit its plan (hosts, profile, key changed)
	ReasonRenewal  Reason = "renewal"  // scheduled or forced renewal
	ReasonExternal Reason = "external" // another tool replaced the files; validated and followed
	ReasonRollback Reason = "rollback" // a consumer rejected the new set; the previous one is back
	ReasonMoved    Reason = "moved"    // a reload gave the same set new paths; every path is new to consumers
)

// Change is the one event the renewal engine publishes: certificate Name now has a new,
// validated set of files on disk. Consumers decide what the change means for
// them from Files (which paths now hold new bytes).
type Change struct {
	Name       string    // managed certificate name from the config
	Reason     Reason    // why it changed
	OldSerial  string    // hex serial of the previous leaf, "" if none
	NewSerial  string    // hex serial of the leaf now installed
	Generation int       // install generation, increasing per certificate
	NotAfter   time.Time // expiry of the new leaf
	CertFile   string    // configured paths of the set
	KeyFile    string
	CAFile     string
	Files      []string // the configured paths whose content changed
}

// Subscriber consumes changes. An error means the consumer could not bring
// its part of the system onto the new set (for example a restarted service
// failed its health check); the publisher may then roll back.
type Subscriber interface {
	CertificateChanged(ctx context.Context, c Change) error
}

// SubscriberFunc adapts a function to Subscriber.
type SubscriberFunc func(ctx context.Context, c Change) error

// CertificateChanged calls f.
func (f SubscriberFunc) CertificateChanged(ctx context.Context, c Change) error { return f(ctx, c) }

// Bus delivers each Change to every subscriber, in subscription order, so a
// consumer that rewrites a Sensu config runs before one that restarts the
// service reading it. Adding a consumer never needs a change to rotate.
type Bus struct {
	mu   sync.RWMutex
	subs []Subscriber
}

// Subscribe adds s; it receives every Change published after this call.
func (b *Bus) Subscribe(s Subscriber) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.subs = append(b.subs, s)
}

// Publish delivers c to every subscriber and returns their errors joined.
// Every subscriber sees the change even when an earlier one failed.
func (b *Bus) Publish(ctx context.Context, c Change) error {
	b.mu.RLock()
	subs := append([]Subscriber(nil), b.subs...)
	b.mu.RUnlock()
	var errs []error
	for _, s := range subs {
		if err := s.CertificateChanged(ctx, c); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
