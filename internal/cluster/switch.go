package cluster

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Step is one member's turn in a rolling switch of the peer URLs.
type Step struct {
	Member string
	// Scheme is the peer URL scheme the member moves to: "https" for the
	// cutover, "http" for its rollback.
	Scheme string
	// Stop stops the member; Start puts its new configuration in place
	// and starts it. etcd stores the new peer URLs between the two, so the
	// member is never running while the others dial it at URLs it does not
	// serve (cut off, it would campaign and unseat the leader).
	Stop, Start func(ctx context.Context) error
	// Phase and Details are recorded for the member once it is back.
	Phase, Details string
	// Wait bounds the wait for the member to come back with quorum.
	Wait time.Duration
}

// defaultStepWait is how long a restarted member has to rejoin.
const defaultStepWait = 2 * time.Minute

// SwitchMember runs one member's step: under RestartLock it checks that the
// cluster keeps quorum without the member, hands leadership away from it,
// stops it, moves its stored peer URLs to the step's scheme, starts it,
// waits until it answers with quorum, and records its phase. A rollback runs the same
// step with scheme http, which undoes the membership change the phase
// depended on (the others keep dialing a member at the URL etcd stores).
func (c *Cluster) SwitchMember(ctx context.Context, s Step) error {
	if err := checkScheme(s.Scheme); err != nil {
		return err
	}
	ctx, done, err := c.turn(ctx)
	if err != nil {
		return err
	}
	defer done()
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
	if err := s.Stop(ctx); err != nil {
		return fmt.Errorf("stop %s before moving its peer URLs to %s: %w", s.Member, s.Scheme, err)
	}
	if _, err := c.MovePeerURLs(ctx, s.Member, s.Scheme); err != nil {
		return fmt.Errorf("%w (%s is stopped: start it again as it was)", err, s.Member)
	}
	if err := s.Start(ctx); err != nil {
		return fmt.Errorf("start %s after moving its peer URLs to %s: %w (etcd already stores the %s URLs: fix the start, or move them back with the rollback)", s.Member, s.Scheme, err, s.Scheme)
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

// RestartMember is a member's turn when its peer URLs stay as they are (a
// phase that changes only what sensu-backend serves): under RestartLock it
// checks that the cluster keeps quorum without the member, hands
// leadership away from it, restarts it, and waits until it answers with
// quorum (wait bounds that; 0 is SwitchMember's default).
func (c *Cluster) RestartMember(ctx context.Context, name string, restart func(ctx context.Context) error, wait time.Duration) error {
	ctx, done, err := c.turn(ctx)
	if err != nil {
		return err
	}
	defer done()
	v, err := c.Members(ctx)
	if err != nil {
		return err
	}
	m, ok := v.Member(name)
	if !ok {
		return fmt.Errorf("no etcd member named %q (members: %s): check etcd-name in its backend.yml", name, v.names())
	}
	if err := canLose(v, name); err != nil {
		return fmt.Errorf("restart %s: %v", name, err)
	}
	if err := c.HandOffLeadership(ctx, name); err != nil {
		return err
	}
	if err := restart(ctx); err != nil {
		return err
	}
	if wait <= 0 {
		wait = defaultStepWait
	}
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	scheme := "http"
	if len(m.PeerURLs) > 0 && strings.HasPrefix(m.PeerURLs[0], "https://") {
		scheme = "https"
	}
	return c.WaitMember(wctx, name, scheme)
}
