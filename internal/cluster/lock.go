package cluster

import (
	"context"
	"fmt"
	"time"

	"go.etcd.io/etcd/client/v3/concurrency"
)

// KeyPrefix is where sensu-tlsd keeps its cluster records in etcd; Sensu's
// own data lives under /sensu.io.
const KeyPrefix = "/sensu-tlsd/cluster/"

// RestartLock is the lock held while a member restarts, by a cutover step
// or a certificate renewal alike, so two members never restart together.
const RestartLock = "restart"

// LockTTL is how long a lock outlives a holder that stopped renewing its
// lease (a crashed or cut-off process).
const LockTTL = 15 * time.Second

// Unlock releases a lock taken with Lock.
type Unlock func(ctx context.Context) error

// Lock takes the cluster-wide lock name, waiting while another holds it.
// The lock lives on a lease of ttl (LockTTL when 0) the holder keeps alive,
// so a holder that dies frees it when the lease expires.
func (c *Cluster) Lock(ctx context.Context, name string, ttl time.Duration) (Unlock, error) {
	if ttl <= 0 {
		ttl = LockTTL
	}
	s, err := concurrency.NewSession(c.client, concurrency.WithTTL(int((ttl+time.Second-1)/time.Second)), concurrency.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("cluster lock %s: lease: %w", name, err)
	}
	m := concurrency.NewMutex(s, KeyPrefix+"locks/"+name)
	if err := m.Lock(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("cluster lock %s: %w", name, err)
	}
	return func(ctx context.Context) error {
		err := m.Unlock(ctx)
		// Closing revokes the lease, which frees the lock even if the
		// unlock request failed.
		if cerr := s.Close(); err == nil {
			err = cerr
		}
		return err
	}, nil
}

type heldLock string

// holding marks ctx as running under the lock name, which this process
// holds for it.
func holding(ctx context.Context, name string) context.Context {
	return context.WithValue(ctx, heldLock(name), true)
}

// Holding reports whether ctx runs under the lock name held for it (a
// member's turn in SwitchMember or RestartMember): what acts inside the turn,
// such as the dispatcher restarting the member's backend, must not wait for
// that lock again, which no one would release until the turn ends.
func Holding(ctx context.Context, name string) bool {
	held, _ := ctx.Value(heldLock(name)).(bool)
	return held
}

// Turn takes RestartLock for what runs in the returned context, as one
// member's turn: a member's whole list of migrate steps takes it before its
// first step, so the public ports the daemon lets go are not left serving
// nothing while the member waits for another member's restart. What runs
// inside (SwitchMember, RestartMember, the dispatcher's restart) does not
// take it again. done releases it.
func (c *Cluster) Turn(ctx context.Context) (held context.Context, done func(), err error) {
	unlock, err := c.Lock(ctx, RestartLock, 0)
	if err != nil {
		return nil, nil, err
	}
	return holding(ctx, RestartLock), func() { unlock(context.WithoutCancel(ctx)) }, nil
}

// turn is ctx within a turn: the one it already runs in, or a new one.
func (c *Cluster) turn(ctx context.Context) (context.Context, func(), error) {
	if Holding(ctx, RestartLock) {
		return ctx, func() {}, nil
	}
	return c.Turn(ctx)
}
