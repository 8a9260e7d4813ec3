package systemd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/internal/cluster"
)

// Serializer keeps one service's action and health gate apart from the
// same service's on other hosts: Hold waits for this host's turn and
// returns the release, called once the health gate passed or failed.
type Serializer interface {
	Hold(ctx context.Context, log *slog.Logger) (release func(), err error)
}

// ClusterRestartLock is the Serializer of a clustered sensu-backend: the
// cluster's lease-based restart lock (cluster.RestartLock), the one a
// cutover step takes too, so two members never restart together (three
// backends whose certificates fall due the same hour would otherwise
// take the cluster's quorum down with them).
//
// Whether the backend is clustered is read from backend.yml at each
// action (etcd-initial-cluster names more than one member), so a node
// that joins a cluster needs no other setting.
type ClusterRestartLock struct {
	// BackendFile is backend.yml; its etcd client keys reach the cluster.
	BackendFile string
	// BackendEnvFiles are the environment files sensu-backend loads,
	// which can set the same keys.
	BackendEnvFiles []string
	// Timeout bounds the wait while another member holds the lock.
	Timeout time.Duration
	// TTL is the lock's lease: how long it outlives a holder that died
	// (0: cluster.LockTTL).
	TTL time.Duration
}

// errLockTimeout is a lock held by another member past Timeout.
var errLockTimeout = errors.New("another member held the cluster's restart lock longer than service-actions.restart-lock-timeout")

// Hold takes the restart lock, unless ctx runs in a turn that holds it
// (cluster.Holding: migrate restarting a member). When this member cannot reach a cluster
// that can grant it (no etcd answers, no quorum, or backend.yml is
// unreadable), it goes ahead unlocked and says so: the lock only guards
// the cluster's quorum, which a member cut off from every etcd endpoint
// cannot protect by waiting, and holding back the restart would leave the
// renewed certificate unloaded until the old one expires. When the cluster answers but another member
// keeps the lock past Timeout, the action fails (and the renewal is
// rolled back, to be tried again): restarting then could take a second
// member down while the first is still not back.
func (l ClusterRestartLock) Hold(ctx context.Context, log *slog.Logger) (func(), error) {
	if cluster.Holding(ctx, cluster.RestartLock) {
		log.Info("restarting in this member's turn, which holds the cluster's restart lock")
		return func() {}, nil
	}
	b, err := cluster.ReadBackend(l.BackendFile, l.BackendEnvFiles)
	if err != nil {
		log.Warn("restarting without the cluster's restart lock: backend.yml is unreadable, so the cluster is unknown", "file", l.BackendFile, "err", err)
		return func() {}, nil
	}
	if !b.Clustered() {
		return func() {}, nil
	}
	// The lock's lease lives as long as the context Lock gets, so that
	// context outlives the wait and ends at release; the wait alone is
	// bounded by Timeout.
	held, drop := context.WithCancel(context.WithoutCancel(ctx))
	c, err := cluster.Open(held, b.Config())
	if err != nil {
		drop()
		log.Warn("restarting without the cluster's restart lock: the cluster is unreachable", "member", b.Name, "err", err)
		return func() {}, nil
	}
	if err := reachCluster(ctx, c); err != nil {
		c.Close()
		drop()
		log.Warn("restarting without the cluster's restart lock: the cluster is unreachable", "member", b.Name, "err", err)
		return func() {}, nil
	}
	if l.Timeout <= 0 {
		l.Timeout = 5 * time.Minute
	}
	timer := time.AfterFunc(l.Timeout, drop)
	stopWait := context.AfterFunc(ctx, drop)
	start := time.Now()
	log.Info("waiting for the cluster's restart lock", "member", b.Name)
	unlock, err := c.Lock(held, cluster.RestartLock, l.TTL)
	// Either stop failing means drop ran: the lock, if taken, has lost the
	// context that keeps its lease alive, so it is given back.
	timedOut, cancelled := !timer.Stop(), !stopWait()
	if err == nil && (timedOut || cancelled) {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		unlock(uctx) // failing, the lease frees it
		cancel()
		err = held.Err()
	}
	if err != nil {
		c.Close()
		drop()
		switch {
		case timedOut:
			return nil, fmt.Errorf("member %s (%s): %w (%v): the restart is not done, so two members are never down together (fix: see which member's restart is stuck, or raise the timeout)", b.Name, l.BackendFile, errLockTimeout, l.Timeout)
		case cancelled:
			return nil, fmt.Errorf("member %s: waiting for the cluster's restart lock: %w", b.Name, ctx.Err())
		}
		log.Warn("restarting without the cluster's restart lock: the cluster stopped answering", "member", b.Name, "err", err)
		return func() {}, nil
	}
	log.Info("holding the cluster's restart lock", "member", b.Name, "waited", time.Since(start).Round(time.Millisecond))
	return func() {
		rctx, cancel := context.WithTimeout(held, 10*time.Second)
		if err := unlock(rctx); err != nil {
			log.Warn("releasing the cluster's restart lock failed; its lease frees it", "member", b.Name, "err", err)
		}
		cancel()
		c.Close()
		drop()
		log.Info("released the cluster's restart lock", "member", b.Name)
	}, nil
}

// reachCluster asks the cluster for its members (a linearizable request:
// it needs quorum), so a cluster that cannot grant a lock at all is told
// apart from a lock another member holds.
func reachCluster(ctx context.Context, c *cluster.Cluster) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := c.Members(ctx)
	return err
}
