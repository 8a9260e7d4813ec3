package cluster_test

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/internal/cluster"
	"github.com/sensu-tlsd/sensu-tlsd/internal/etcdtest"
)

// Three members contend for the restart lock, each through its own etcd
// member: never two hold it at once, and every contender gets its turns.
func TestRestartLockIsHeldByOneMemberAtATime(t *testing.T) {
	c := etcdtest.Start(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const turns = 5
	var holding, most, taken atomic.Int32
	var wg sync.WaitGroup
	for _, m := range c.Members {
		co := coordinator(t, ctx, c, m)
		defer co.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range turns {
				unlock, err := co.Lock(ctx, cluster.RestartLock, 0)
				if err != nil {
					t.Error(err)
					return
				}
				now := holding.Add(1)
				for old := most.Load(); now > old && !most.CompareAndSwap(old, now); old = most.Load() {
				}
				taken.Add(1)
				time.Sleep(30 * time.Millisecond)
				holding.Add(-1)
				if err := unlock(ctx); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if most.Load() != 1 || taken.Load() != turns*int32(len(c.Members)) {
		t.Errorf("at most %d held the lock at once (want 1); it was taken %d times (want %d)", most.Load(), taken.Load(), turns*len(c.Members))
	}
}

// A holder that dies without unlocking (its connection gone, its lease no
// longer renewed) frees the lock when the lease expires.
func TestLockOfACrashedHolderFreesWhenItsLeaseExpires(t *testing.T) {
	c := etcdtest.Start(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const ttl = 2 * time.Second
	holder := coordinator(t, ctx, c, c.Members[0])
	if _, err := holder.Lock(ctx, "renewal", ttl); err != nil {
		t.Fatal(err)
	}
	crashed := time.Now()
	holder.Close()

	other := coordinator(t, ctx, c, c.Members[1])
	defer other.Close()
	unlock, err := other.Lock(ctx, "renewal", ttl)
	if err != nil {
		t.Fatal(err)
	}
	waited := time.Since(crashed)
	t.Logf("the lock came free %v after its holder died (lease TTL %v)", waited.Round(time.Millisecond), ttl)
	if waited < ttl/2 {
		t.Errorf("the lock came free after %v, before the dead holder's lease (TTL %v) could expire: it was not held", waited, ttl)
	}
	if waited > ttl+10*time.Second {
		t.Errorf("the lock came free only after %v (lease TTL %v)", waited, ttl)
	}
	if err := unlock(ctx); err != nil {
		t.Fatal(err)
	}
}

// A member is not moved while the cluster could not lose it: with one of
// three members down, moving another would leave one of three.
func TestMovePeerURLsRefusesWhenTheClusterWouldLoseQuorum(t *testing.T) {
	c := etcdtest.Start(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c.StopMember(c.Members[2])
	co := coordinator(t, ctx, c, c.Members[0])
	defer co.Close()
	_, err := co.MovePeerURLs(ctx, "backend-1", "https")
	if err == nil || !strings.Contains(err.Error(), "would lose quorum while backend-1 restarts") || !strings.Contains(err.Error(), "backend-3") {
		t.Fatalf("moving backend-1 with backend-3 down: %v", err)
	}
	v, err := co.Members(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := v.Member("backend-1")
	if !strings.HasPrefix(m.PeerURLs[0], "http://") {
		t.Errorf("the refused move changed backend-1's peer URLs to %v", m.PeerURLs)
	}
	if _, err := co.MovePeerURLs(ctx, "backend-9", "https"); err == nil || !strings.Contains(err.Error(), `no etcd member named "backend-9"`) {
		t.Errorf("moving an unknown member: %v", err)
	}
}

// Phases and plaintext agents recorded through one member are read back
// through another.
func TestRecordsAreSharedByEveryMember(t *testing.T) {
	c := etcdtest.Start(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	one, two := coordinator(t, ctx, c, c.Members[0]), coordinator(t, ctx, c, c.Members[1])
	defer one.Close()
	defer two.Close()
	seen := time.Date(2026, 12, 6, 16, 0, 0, 0, time.UTC)
	if err := one.RecordPhase(ctx, "backend-1", "agents", "applied by test"); err != nil {
		t.Fatal(err)
	}
	if err := one.RecordPlaintextAgents(ctx, "backend-1", []cluster.AgentSeen{{Name: "app-7", LastSeen: seen}}); err != nil {
		t.Fatal(err)
	}
	phases, err := two.Phases(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(phases) != 1 || phases[0].Member != "backend-1" || phases[0].Phase != "agents" || phases[0].Details != "applied by test" {
		t.Errorf("phases read through backend-2: %+v", phases)
	}
	agents, err := two.PlaintextAgents(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(agents) != 1 || len(agents[0].Agents) != 1 || agents[0].Agents[0].Name != "app-7" || !agents[0].Agents[0].LastSeen.Equal(seen) {
		t.Errorf("plaintext agents read through backend-2: %+v", agents)
	}
}
