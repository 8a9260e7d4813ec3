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

// heldKey marks a context as running under the named lock.
type heldKey struct{ name string }

// Holding is ctx marked as running under the lock name, which its caller
// holds: a cutover step passes it to the restart it runs under
// RestartLock, so the restart's own serializer (the dispatcher's
// ClusterRestartLock) does not wait for a lock its own process holds.
func Holding(ctx context.Context, name string) context.Context {
	return context.WithValue(ctx, heldKey{name}, true)
}

// Holds reports whether ctx runs under the lock name (see Holding).
func Holds(ctx context.Context, name string) bool {
	held, _ := ctx.Value(heldKey{name}).(bool)
	return held
}
