package cluster

import (
	"context"
	"fmt"
	"time"
)

// Step is one member's turn in a rolling switch of the peer URLs.
type Step struct {
	Member string
	// Scheme is the peer URL scheme the member moves to: "https" for the
	// cutover, "http" for its rollback.
	Scheme string
	// Restart puts the member's new configuration in place and restarts
	// it; it runs after etcd stores the new peer URLs, under the restart
	// lock.
	Restart func(ctx context.Context) error
	// Phase and Details are recorded for the member once it is back.
	Phase, Details string
	// Wait bounds the wait for the member to come back with quorum.
	Wait time.Duration
}

// defaultStepWait is how long a restarted member has to rejoin.
const defaultStepWait = 2 * time.Minute

// SwitchMember runs one member's step: under RestartLock it checks that the
// cluster keeps quorum without the member, hands leadership away from it,
// moves its stored peer URLs to the step's scheme, restarts it, waits until
// it answers with quorum, and records its phase. A rollback runs the same
// step with scheme http, which undoes the membership change the phase
// depended on (a member restarted on http while etcd still stores https is
// unreachable to the others).
func (c *Cluster) SwitchMember(ctx context.Context, s Step) error {
	if err := checkScheme(s.Scheme); err != nil {
		return err
	}
	unlock, err := c.Lock(ctx, RestartLock, 0)
	if err != nil {
		return err
	}
	defer unlock(context.WithoutCancel(ctx))
	v, err := c.Members(ctx)
	if err != nil {
		return err
	}
	if _, ok := v.Member(s.Member); !ok {
		return fmt.Errorf("no etcd member named %q (members: %s): check etcd-name in its backend.yml", s.Member, v.names())
	}
	if err := canLose(v, s.Member); err != nil {
		return fmt.Errorf("switch %s to %s peers: %v", s.Member, s.Scheme, err)
	}
	if err := c.HandOffLeadership(ctx, s.Member); err != nil {
		return err
	}
	if _, err := c.MovePeerURLs(ctx, s.Member, s.Scheme); err != nil {
		return err
	}
	if err := s.Restart(ctx); err != nil {
		return fmt.Errorf("restart %s after moving its peer URLs to %s: %w (etcd already stores the %s URLs: fix the restart, or move them back with the rollback)", s.Member, s.Scheme, err, s.Scheme)
	}
	wait := s.Wait
	if wait <= 0 {
		wait = defaultStepWait
	}
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	if err := c.WaitMember(wctx, s.Member, s.Scheme); err != nil {
		return err
	}
	if s.Phase == "" {
		return nil
	}
	return c.RecordPhase(ctx, s.Member, s.Phase, s.Details)
}
