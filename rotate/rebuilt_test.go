package rotate

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/config"
	"github.com/sensu-tlsd/sensu-tlsd/internal/event"
)

// TestRebuiltSwapsAfterTheChangeInFlight: Check builds without touching
// the current subscriber; Apply of the checked config swaps that build in
// (no second build) after a delivery in flight, and releases the old one
// exactly once.
func TestRebuiltSwapsAfterTheChangeInFlight(t *testing.T) {
	var built, released atomic.Int32
	inFlight, finish := make(chan struct{}), make(chan struct{})
	var delivered []string
	build := func(cfg *config.Config) (event.Subscriber, func(), error) {
		if cfg.LogLevel == "bad" {
			return nil, nil, errors.New("services[0] (sensu-backend): key preset: unknown")
		}
		built.Add(1)
		level := cfg.LogLevel
		sub := event.SubscriberFunc(func(ctx context.Context, c event.Change) error {
			if c.Name == "slow" {
				close(inFlight)
				<-finish
			}
			delivered = append(delivered, level+":"+c.Name)
			return nil
		})
		return sub, func() { released.Add(1) }, nil
	}
	r, err := NewRebuilt(&config.Config{LogLevel: "old"}, build)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Check(&config.Config{LogLevel: "bad"}); err == nil {
		t.Fatal("Check accepted a configuration that does not build")
	}
	if err := r.Check(&config.Config{LogLevel: "unused"}); err != nil || built.Load() != 2 || released.Load() != 0 {
		t.Fatalf("Check: %v; built %d, released %d", err, built.Load(), released.Load())
	}
	next := &config.Config{LogLevel: "new"}
	if err := r.Check(next); err != nil || built.Load() != 3 || released.Load() != 1 {
		t.Fatalf("second Check: %v; built %d, released %d (want the unused build released)", err, built.Load(), released.Load())
	}

	go r.CertificateChanged(context.Background(), event.Change{Name: "slow"})
	<-inFlight
	applied := make(chan error, 1)
	go func() { applied <- r.Apply(context.Background(), next) }()
	select {
	case err := <-applied:
		t.Fatalf("Apply returned (%v) while a change was being delivered", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(finish)
	if err := <-applied; err != nil {
		t.Fatal(err)
	}
	if err := r.CertificateChanged(context.Background(), event.Change{Name: "next"}); err != nil {
		t.Fatal(err)
	}
	if want := []string{"old:slow", "new:next"}; len(delivered) != 2 || delivered[0] != want[0] || delivered[1] != want[1] {
		t.Fatalf("delivered %v, want %v", delivered, want)
	}
	if built.Load() != 3 || released.Load() != 2 {
		t.Fatalf("after the swap: built %d, released %d; want 3 (Apply took the checked build) and 2 (the unused build and the old subscriber)", built.Load(), released.Load())
	}
	r.Close()
	if released.Load() != 3 {
		t.Fatalf("Close released %d in all, want 3", released.Load())
	}
}

// TestRebuiltDiscardReleasesTheCheckedBuild: a rejected reload's build is
// released at once, not kept until the next reload or Close, and an Apply
// after it builds afresh.
func TestRebuiltDiscardReleasesTheCheckedBuild(t *testing.T) {
	var built, released atomic.Int32
	build := func(cfg *config.Config) (event.Subscriber, func(), error) {
		built.Add(1)
		return event.SubscriberFunc(func(context.Context, event.Change) error { return nil }), func() { released.Add(1) }, nil
	}
	r, err := NewRebuilt(&config.Config{}, build)
	if err != nil {
		t.Fatal(err)
	}
	next := &config.Config{}
	if err := r.Check(next); err != nil {
		t.Fatal(err)
	}
	r.Discard()
	if built.Load() != 2 || released.Load() != 1 {
		t.Fatalf("after Discard: built %d, released %d; want the checked build released", built.Load(), released.Load())
	}
	if err := r.Apply(context.Background(), next); err != nil {
		t.Fatal(err)
	}
	if built.Load() != 3 || released.Load() != 2 {
		t.Fatalf("Apply after Discard: built %d, released %d; want a fresh build and the old one released", built.Load(), released.Load())
	}
	r.Close()
	if released.Load() != 3 {
		t.Fatalf("Close released %d in all, want 3", released.Load())
	}
}
