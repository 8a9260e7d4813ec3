package migrate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/config"
	"github.com/sensu-tlsd/sensu-tlsd/config/sensu"
	"github.com/sensu-tlsd/sensu-tlsd/internal/cluster"
	"github.com/sensu-tlsd/sensu-tlsd/internal/reload"
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

// memberTimeout bounds reaching the cluster before a plan, apply or
// rollback on a member, and one publication of the plaintext agents.
const memberTimeout = 15 * time.Second

// ClusterConfig is how this node's backend reaches its cluster: b's etcd
// client URLs and certificate, or the backend certificate of the
// sensu-tlsd config when b names none yet, so a member still on plaintext
// can reach members already on TLS.
func (n *Node) ClusterConfig(b *cluster.Backend) cluster.Config {
	cfg := b.Config()
	if cfg.CertFile == "" && cfg.CAFile == "" {
		cfg.CertFile, cfg.KeyFile, cfg.CAFile = n.Backend.CertFile, n.Backend.KeyFile, n.Backend.CAFile
	}
	return cfg
}

// OpenMember is this node as a member of its cluster when its backend.yml's
// etcd-initial-cluster names more than one member, nil otherwise. The
// connection goes to the other members' client URLs, so it survives this
// member's own restart. Close the member's Cluster when done.
func OpenMember(ctx context.Context, n *Node) (*Member, error) {
	if !n.IsBackend() {
		return nil, nil
	}
	b, err := cluster.ReadBackend(n.Files.Backend, n.Files.BackendEnv)
	if err != nil || !b.Clustered() {
		return nil, err
	}
	c, err := cluster.Open(ctx, n.ClusterConfig(b))
	if err != nil {
		return nil, err
	}
	sctx, cancel := context.WithTimeout(ctx, memberTimeout)
	defer cancel()
	if err := c.SyncEndpoints(sctx, b.Name); err != nil {
		c.Close()
		return nil, fmt.Errorf("%s names %d etcd members (etcd-initial-cluster), so migrate acts through the cluster's etcd, which did not answer: %w; "+
			"bring a quorum of members back first (migrate status --cluster)", b.File, len(b.InitialCluster), err)
	}
	return &Member{Cluster: c, Name: b.Name}, nil
}

// restartBackend does the step s (a RestartBackend) as this member's turn.
// The scheme the backend's file now gives its peer URLs decides whether
// etcd must store new ones: then cluster.SwitchMember stops the backend,
// moves them and starts it with s; otherwise cluster.RestartMember
// restarts it under the restart lock, quorum checked before and the member
// waited for after.
func (m *Member) restartBackend(ctx context.Context, n *Node, svc Services, s Step) error {
	b, err := cluster.ReadBackend(n.Files.Backend, n.Files.BackendEnv)
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
	return m.Cluster.RestartMember(ctx, m.Name, func(ctx context.Context) error { return svc.Do(ctx, s) }, m.Wait)
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

// Publisher is the daemon's service on a clustered backend that puts the
// agents its own bridge last saw in plaintext into the cluster's records
// (cluster.RecordPlaintextAgents) every Interval, so the gate of any member
// counts them. It reads the node's backend.yml each time and does nothing
// while the file names no cluster. It follows reloads (Prepare): each
// configuration's node is the one published for from then on, at once,
// and a configuration that names no backend stops the publishing.
type Publisher struct {
	// Node is the node published for until a reload names another; nil
	// publishes nothing.
	Node *Node
	// Agents are the bridge's sightings now (the proxy's agent book).
	Agents   func() []Sighting
	Interval time.Duration // 0: PublishInterval
	Log      *slog.Logger

	mu     sync.Mutex
	kicked chan struct{} // a reload's node is published at once
}

// PublishInterval is how often a member publishes its plaintext agents.
const PublishInterval = 30 * time.Second

// Prepare takes cfg's node: the backend NodeFromConfig finds, none when
// cfg names no backend. It never refuses a configuration: a node that is
// not a backend has nothing to publish.
func (p *Publisher) Prepare(cfg *config.Config) (reload.Pending, error) {
	n, err := NodeFromConfig(cfg, sensu.Files{})
	if err != nil || !n.IsBackend() {
		n = nil
	}
	return publisherPending{p, n}, nil
}

type publisherPending struct {
	p    *Publisher
	node *Node
}

func (pp publisherPending) Commit(context.Context) error {
	pp.p.mu.Lock()
	pp.p.Node = pp.node
	kicked := pp.p.kick()
	pp.p.mu.Unlock()
	select {
	case kicked <- struct{}{}:
	default: // a publication is due already
	}
	return nil
}

func (publisherPending) Abort() {}

// kick is the channel that wakes Run; p.mu is held.
func (p *Publisher) kick() chan struct{} {
	if p.kicked == nil {
		p.kicked = make(chan struct{}, 1)
	}
	return p.kicked
}

// Run publishes until ctx ends; a failed publication is logged when its
// cause changes, and tried again next time.
func (p *Publisher) Run(ctx context.Context) error {
	every := p.Interval
	if every <= 0 {
		every = PublishInterval
	}
	p.mu.Lock()
	kicked := p.kick()
	p.mu.Unlock()
	lastErr := ""
	for {
		p.mu.Lock()
		node := p.Node
		p.mu.Unlock()
		err := p.publish(ctx, node)
		switch {
		case err != nil && err.Error() != lastErr:
			p.Log.Warn("publishing the bridge's plaintext agents to the cluster failed; the other members' migrate gates do not see them", "err", err)
		case err == nil && lastErr != "":
			p.Log.Info("publishing the bridge's plaintext agents to the cluster works again")
		}
		lastErr = ""
		if err != nil {
			lastErr = err.Error()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-kicked:
		case <-time.After(every):
		}
	}
}

func (p *Publisher) publish(ctx context.Context, node *Node) error {
	if node == nil {
		return nil
	}
	b, err := cluster.ReadBackend(node.Files.Backend, node.Files.BackendEnv)
	if err != nil || !b.Clustered() {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, memberTimeout)
	defer cancel()
	c, err := cluster.Open(ctx, node.ClusterConfig(b))
	if err != nil {
		return err
	}
	defer c.Close()
	var agents []cluster.AgentSeen
	for _, s := range StillPlaintext(p.Agents(), 0, time.Now()) {
		agents = append(agents, cluster.AgentSeen{Namespace: s.Namespace, Name: s.Name, LastSeen: s.LastSeen})
	}
	return c.RecordPlaintextAgents(ctx, b.Name, agents)
}
