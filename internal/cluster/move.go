package cluster

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
)

// rescheme returns urls with their scheme set to scheme ("http" or
// "https"), host and port kept.
func rescheme(urls []string, scheme string) ([]string, error) {
	var out []string
	for _, raw := range urls {
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("peer URL %q is not a URL", raw)
		}
		u.Scheme = scheme
		out = append(out, u.String())
	}
	return out, nil
}

func checkScheme(scheme string) error {
	if scheme != "http" && scheme != "https" {
		return fmt.Errorf("peer URL scheme %q: want http or https", scheme)
	}
	return nil
}

// canLose checks that the cluster has quorum now and keeps it while member
// name is down: a majority of all members, not counting name, answer.
func canLose(v View, name string) error {
	if !v.Quorum {
		return fmt.Errorf("the cluster has no quorum (%d of %d members answer): bring the members back before changing any", v.Healthy(), len(v.Members))
	}
	if len(v.Members) == 1 {
		return nil
	}
	others := 0
	for _, m := range v.Members {
		if m.Healthy && m.Name != name {
			others++
		}
	}
	if others <= len(v.Members)/2 {
		var down []string
		for _, m := range v.Members {
			if !m.Healthy {
				down = append(down, fmt.Sprintf("%s (%s)", m.Name, m.Problem))
			}
		}
		if len(down) == 0 {
			return fmt.Errorf("the cluster would lose quorum while %s restarts: a cluster of %d members cannot lose one; add a member first (etcdctl member add), or stop the whole cluster for the change", name, len(v.Members))
		}
		return fmt.Errorf("the cluster would lose quorum while %s restarts: only %d other members of %d answer; bring back %s first", name, others, len(v.Members), strings.Join(down, ", "))
	}
	return nil
}

// MovePeerURLs updates the peer URLs etcd stores for member name to
// scheme ("https" for the cutover, "http" for its rollback), keeping hosts
// and ports. It refuses when the cluster lacks quorum or would lose it
// while the member restarts, and checks after the update that the cluster
// still has quorum and stores the new URLs. Other members dial the new URLs
// from then on, so the member should be stopped before and started with
// matching listeners after, as SwitchMember does. Moving a member already
// at scheme changes nothing.
func (c *Cluster) MovePeerURLs(ctx context.Context, name, scheme string) (Member, error) {
	if err := checkScheme(scheme); err != nil {
		return Member{}, err
	}
	v, err := c.Members(ctx)
	if err != nil {
		return Member{}, err
	}
	m, ok := v.Member(name)
	if !ok {
		return Member{}, fmt.Errorf("no etcd member named %q (members: %s): check etcd-name in its backend.yml", name, v.names())
	}
	want, err := rescheme(m.PeerURLs, scheme)
	if err != nil {
		return Member{}, fmt.Errorf("member %s: %v", name, err)
	}
	if slices.Equal(want, m.PeerURLs) {
		return m, nil
	}
	if err := canLose(v, name); err != nil {
		return Member{}, fmt.Errorf("move %s's peer URLs to %s: %v", name, scheme, err)
	}
	if _, err := c.client.MemberUpdate(ctx, m.ID, want); err != nil {
		return Member{}, fmt.Errorf("etcd member update %s (%x) to %v: %w", name, m.ID, want, err)
	}
	// The member list comes from whichever member the client reached,
	// which may not have applied the change yet: wait until it shows it.
	var after View
	wctx, cancel := context.WithTimeout(ctx, storedWait)
	defer cancel()
	if err := c.waitFor(wctx, func(v View) bool {
		got, _ := v.Member(name)
		after = v
		return slices.Equal(got.PeerURLs, want)
	}, fmt.Sprintf("etcd to store %s's peer URLs %v", name, want)); err != nil {
		return Member{}, fmt.Errorf("etcd member update %s: %w", name, err)
	}
	m, _ = after.Member(name)
	if !after.Quorum {
		return Member{}, fmt.Errorf("the cluster lost quorum after moving %s's peer URLs to %v: move them back with `etcdctl member update %x --peer-urls=%v`", name, want, m.ID, m.PeerURLs)
	}
	return m, nil
}

// storedWait bounds the wait for every member to show a membership change.
const storedWait = 15 * time.Second

// pollInterval is how often a wait asks the cluster again.
const pollInterval = 200 * time.Millisecond

// HandOffLeadership moves leadership from member name to another answering
// member when name leads, so restarting it costs no election.
func (c *Cluster) HandOffLeadership(ctx context.Context, name string) error {
	v, err := c.Members(ctx)
	if err != nil {
		return err
	}
	leader, ok := v.Leader()
	if !ok || leader.Name != name {
		return nil
	}
	var to Member
	for _, m := range v.Members {
		if m.Healthy && m.Name != name {
			to = m
			break
		}
	}
	if to.ID == 0 {
		return nil // a one-member cluster: nobody to hand off to
	}
	// MoveLeader is served by the leader only.
	lc, err := newClient(ctx, c.cfg, leader.ClientURLs)
	if err != nil {
		return err
	}
	defer lc.Close()
	if _, err := lc.MoveLeader(ctx, to.ID); err != nil {
		return fmt.Errorf("move etcd leadership from %s to %s: %w", name, to.Name, err)
	}
	return c.waitFor(ctx, func(v View) bool {
		l, ok := v.Leader()
		return ok && l.Name != name
	}, fmt.Sprintf("leadership to leave %s", name))
}

// WaitMember waits until member name answers, the cluster has quorum with
// every other member that answered before, and etcd stores peer URLs of
// scheme for it.
func (c *Cluster) WaitMember(ctx context.Context, name, scheme string) error {
	return c.waitFor(ctx, func(v View) bool {
		m, ok := v.Member(name)
		if !ok || !m.Healthy || !v.Quorum {
			return false
		}
		for _, u := range m.PeerURLs {
			if pu, err := url.Parse(u); err != nil || pu.Scheme != scheme {
				return false
			}
		}
		return true
	}, fmt.Sprintf("member %s to answer on %s peer URLs with quorum", name, scheme))
}

func (c *Cluster) waitFor(ctx context.Context, done func(View) bool, what string) error {
	var last View
	var lastErr error
	for {
		v, err := c.Members(ctx)
		if err == nil && done(v) {
			return nil
		}
		if err == nil {
			last = v
		}
		lastErr = err
		select {
		case <-ctx.Done():
			if lastErr != nil {
				return fmt.Errorf("waiting for %s: %v (last error: %v)", what, ctx.Err(), lastErr)
			}
			return fmt.Errorf("waiting for %s: %v; last seen: %s", what, ctx.Err(), last.summary())
		case <-time.After(pollInterval):
		}
	}
}

// summary is a one-line account of the view for error messages.
func (v View) summary() string {
	s := fmt.Sprintf("quorum %v;", v.Quorum)
	for _, m := range v.Members {
		state := "healthy"
		if !m.Healthy {
			state = m.Problem
		}
		s += fmt.Sprintf(" %s %v %s;", m.Name, m.PeerURLs, state)
	}
	return s
}
