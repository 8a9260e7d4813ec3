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

// TestRebuiltSwapsAfterTheChangeInFlight: Prepare builds without touching
// the current subscriber; Commit swaps that build in (no second build)
// after a delivery in flight, and releases the old one exactly once.
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
	if _, err := r.Prepare(&config.Config{LogLevel: "bad"}); err == nil {
		t.Fatal("Prepare accepted a configuration that does not build")
	}
	next, err := r.Prepare(&config.Config{LogLevel: "new"})
	if err != nil || built.Load() != 2 || released.Load() != 0 {
		t.Fatalf("Prepare: %v; built %d, released %d", err, built.Load(), released.Load())
	}

	go r.CertificateChanged(context.Background(), event.Change{Name: "slow"})
	<-inFlight
	committed := make(chan error, 1)
	go func() { committed <- next.Commit(context.Background()) }()
	select {
	case err := <-committed:
		t.Fatalf("Commit returned (%v) while a change was being delivered", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(finish)
	if err := <-committed; err != nil {
		t.Fatal(err)
	}
	if err := r.CertificateChanged(context.Background(), event.Change{Name: "next"}); err != nil {
		t.Fatal(err)
	}
	if want := []string{"old:slow", "new:next"}; len(delivered) != 2 || delivered[0] != want[0] || delivered[1] != want[1] {
		t.Fatalf("delivered %v, want %v", delivered, want)
	}
	if built.Load() != 2 || released.Load() != 1 {
		t.Fatalf("after the swap: built %d, released %d; want 2 (Commit took the prepared build) and 1 (the old subscriber)", built.Load(), released.Load())
	}
	r.Close()
	if released.Load() != 2 {
		t.Fatalf("Close released %d in all, want 2", released.Load())
	}
}

// TestRebuiltAbortReleasesThePreparedBuild: a rejected reload's build is
// released at once and the current subscriber keeps the changes.
func TestRebuiltAbortReleasesThePreparedBuild(t *testing.T) {
	var built, released atomic.Int32
	var got []string
	build := func(cfg *config.Config) (event.Subscriber, func(), error) {
		built.Add(1)
		level := cfg.LogLevel
		return event.SubscriberFunc(func(_ context.Context, c event.Change) error {
			got = append(got, level+":"+c.Name)
			return nil
		}), func() { released.Add(1) }, nil
	}
	r, err := NewRebuilt(&config.Config{LogLevel: "old"}, build)
	if err != nil {
		t.Fatal(err)
	}
	p, err := r.Prepare(&config.Config{LogLevel: "rejected"})
	if err != nil {
		t.Fatal(err)
	}
	p.Abort()
	if built.Load() != 2 || released.Load() != 1 {
		t.Fatalf("after Abort: built %d, released %d; want the prepared build released", built.Load(), released.Load())
	}
	if err := r.CertificateChanged(context.Background(), event.Change{Name: "c"}); err != nil || len(got) != 1 || got[0] != "old:c" {
		t.Fatalf("after Abort the change went to %v (err %v), want the current subscriber", got, err)
	}
	r.Close()
	if released.Load() != 2 {
		t.Fatalf("Close released %d in all, want 2", released.Load())
	}
}
