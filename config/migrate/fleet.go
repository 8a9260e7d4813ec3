package migrate

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/internal/cluster"
)

// Member is this backend as one member of a clustered Sensu backend (its
// backend.yml's etcd-initial-cluster names more than one member). Apply
// and rollback then restart sensu-backend through the cluster's etcd: one
// member at a time under cluster.RestartLock, the member's stored peer
// URLs moved while it is stopped when its backend.yml changes their scheme
// (phase 3 and its rollback), leader and quorum checked before and after,
// and the member's phase recorded for `migrate status --cluster`.
type Member struct {
	Cluster *cluster.Cluster
	// Name is the member's etcd-name.
	Name string
	// Wait bounds how long the member has to rejoin after its restart (0:
	// cluster.SwitchMember's default).
	Wait time.Duration
}

// restartBackend does the step s (a RestartBackend) as this member's turn.
// The scheme the backend's file now gives its peer URLs decides whether
// etcd must store new ones: then cluster.SwitchMember stops the backend,
// moves them and starts it with s; otherwise the backend restarts under
// the restart lock with quorum checked before and the member waited for
// after.
func (m *Member) restartBackend(ctx context.Context, n *Node, svc Services, s Step) error {
	b, err := cluster.ReadBackend(n.Files.Backend)
	if err != nil {
		return err
	}
	want := peerScheme(b.AdvertisePeerURLs)
	v, err := m.Cluster.Members(ctx)
	if err != nil {
		return err
	}
	cur, ok := v.Member(m.Name)
	if !ok {
		return fmt.Errorf("%s: etcd-name %q is no member of the cluster: set it to this member's name in `migrate status --cluster`", n.Files.Backend, m.Name)
	}
	if want != "" && peerScheme(cur.PeerURLs) != want {
		return m.Cluster.SwitchMember(ctx, cluster.Step{
			Member: m.Name, Scheme: want, Wait: m.Wait,
			Stop: func(ctx context.Context) error {
				return svc.Do(ctx, Step{Action: StopBackend, Why: "etcd moves this member's peer URLs to " + want + " while it is down"})
			},
			Start: func(ctx context.Context) error { return svc.Do(ctx, s) },
		})
	}
	unlock, err := m.Cluster.Lock(ctx, cluster.RestartLock, 0)
	if err != nil {
		return err
	}
	defer unlock(context.WithoutCancel(ctx))
	if v, err = m.Cluster.Members(ctx); err != nil {
		return err
	}
	if !v.Quorum {
		return fmt.Errorf("the cluster has no quorum (%d of %d members answer): bring the members back before restarting %s", v.Healthy(), len(v.Members), m.Name)
	}
	if err := m.Cluster.HandOffLeadership(ctx, m.Name); err != nil {
		return err
	}
	if err := svc.Do(ctx, s); err != nil {
		return err
	}
	wait := m.Wait
	if wait <= 0 {
		wait = 2 * time.Minute
	}
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	return m.Cluster.WaitMember(wctx, m.Name, peerScheme(cur.PeerURLs))
}

// record stores the node's phase in the cluster; a failure is reported in
// the log, since the files and processes are already where they must be.
func (m *Member) record(ctx context.Context, o Options, res *Result, p Phase, details string) {
	if err := m.Cluster.RecordPhase(ctx, m.Name, p.String(), details); err != nil {
		o.log(res, fmt.Sprintf("warning: phase %d (%s) not recorded in the cluster (migrate status --cluster shows the previous one): %v", p, p, err))
		return
	}
	o.log(res, fmt.Sprintf("recorded: member %s at phase %d (%s) in the cluster", m.Name, p, p))
}

// peerScheme is the scheme all of urls share, "" when they disagree or
// none parses.
func peerScheme(urls []string) string {
	scheme := ""
	for _, u := range urls {
		pu, err := url.Parse(u)
		if err != nil || (scheme != "" && pu.Scheme != scheme) {
			return ""
		}
		scheme = pu.Scheme
	}
	return scheme
}

// ClusterAgents are the agents every member's daemon published to the
// cluster as still connecting in plaintext through its bridge
// (cluster.RecordPlaintextAgents). Except names the member whose daemon is
// asked directly (LocalAgents), fresher than what it published.
type ClusterAgents struct {
	Cluster *cluster.Cluster
	Except  string
}

// Sightings reads every member's record.
func (c ClusterAgents) Sightings(ctx context.Context) ([]Sighting, error) {
	recs, err := c.Cluster.PlaintextAgents(ctx)
	if err != nil {
		return nil, fmt.Errorf("the other members' plaintext agents: %w", err)
	}
	var out []Sighting
	for _, r := range recs {
		if r.Member == c.Except {
			continue
		}
		for _, a := range r.Agents {
			out = append(out, Sighting{Member: r.Member, Namespace: a.Namespace, Name: a.Name, Transport: "plaintext", LastSeen: a.LastSeen})
		}
	}
	return out, nil
}

// AllAgents is every source's sightings together; one source that cannot
// answer fails the whole, since a gate must not pass on a partial count.
type AllAgents []AgentSightings

// Sightings asks each source.
func (a AllAgents) Sightings(ctx context.Context) ([]Sighting, error) {
	var out []Sighting
	var errs []error
	for _, s := range a {
		seen, err := s.Sightings(ctx)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, seen...)
	}
	return out, errors.Join(errs...)
}

// Published is what a member's daemon publishes to the cluster: the
// agents whose latest sighting on its own bridge was in plaintext.
func Published(seen []Sighting) []cluster.AgentSeen {
	var out []cluster.AgentSeen
	for _, s := range StillPlaintext(seen, 0, time.Now()) {
		out = append(out, cluster.AgentSeen{Namespace: s.Namespace, Name: s.Name, LastSeen: s.LastSeen})
	}
	return out
}
