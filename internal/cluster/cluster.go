package cluster

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Cluster is an open connection to a cluster's etcd.
type Cluster struct {
	client *clientv3.Client
	cfg    Config
}

// dialTimeout bounds connecting to one endpoint; a cluster that answers
// on none within it is reported, not waited for.
const dialTimeout = 5 * time.Second

// Open connects to the cluster at cfg's endpoints. It does not wait for an
// answer: the first request reports an unreachable cluster.
func Open(ctx context.Context, cfg Config) (*Cluster, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, fmt.Errorf("%s: no etcd client URL to connect to: set etcd-advertise-client-urls (or etcd-client-urls)", cfg.Source)
	}
	client, err := newClient(ctx, cfg, cfg.Endpoints)
	if err != nil {
		return nil, err
	}
	return &Cluster{client: client, cfg: cfg}, nil
}

func newClient(ctx context.Context, cfg Config, endpoints []string) (*clientv3.Client, error) {
	tlsCfg, err := cfg.tlsConfig()
	if err != nil {
		return nil, err
	}
	client, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		TLS:         tlsCfg,
		Username:    cfg.Username,
		Password:    cfg.Password,
		DialTimeout: dialTimeout,
		Context:     ctx,
		// The client's own logger reports every retry on stderr; errors
		// come back to the caller instead.
		Logger: zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("etcd at %s (from %s): %v", strings.Join(endpoints, ", "), cfg.Source, err)
	}
	return client, nil
}

// Close releases the connection.
func (c *Cluster) Close() error { return c.client.Close() }

// Member is one etcd member as the cluster sees it.
type Member struct {
	ID         uint64   `json:"id"`
	Name       string   `json:"name"`
	PeerURLs   []string `json:"peer_urls"`
	ClientURLs []string `json:"client_urls"`
	Leader     bool     `json:"leader"`
	// Healthy is true when the member answered a status request and
	// reported no error; Problem says why not.
	Healthy bool   `json:"healthy"`
	Problem string `json:"problem,omitempty"`
}

// View is the membership and health of the cluster at one moment.
type View struct {
	Members []Member
	// LeaderID is the leader the answering members agree on, 0 if none.
	LeaderID uint64
	// Quorum is true when a majority of members answer and follow the
	// same leader: the cluster can commit writes.
	Quorum bool
}

// Healthy counts the members that answered.
func (v View) Healthy() int {
	n := 0
	for _, m := range v.Members {
		if m.Healthy {
			n++
		}
	}
	return n
}

// Member finds a member by name.
func (v View) Member(name string) (Member, bool) {
	for _, m := range v.Members {
		if m.Name == name {
			return m, true
		}
	}
	return Member{}, false
}

// Leader is the leading member.
func (v View) Leader() (Member, bool) {
	for _, m := range v.Members {
		if m.Leader {
			return m, true
		}
	}
	return Member{}, false
}

func (v View) names() string {
	var out []string
	for _, m := range v.Members {
		out = append(out, m.Name)
	}
	return strings.Join(out, ", ")
}

// statusTimeout bounds one member's status request, so a member that is
// down does not hold up the view of the others.
const statusTimeout = 2 * time.Second

// Members lists the members and asks each one for its status.
func (c *Cluster) Members(ctx context.Context) (View, error) {
	resp, err := c.client.MemberList(ctx)
	if err != nil {
		return View{}, fmt.Errorf("etcd member list at %s: %w", strings.Join(c.cfg.Endpoints, ", "), err)
	}
	var v View
	leaders := map[uint64]int{}
	for _, pm := range resp.Members {
		m := Member{ID: pm.ID, Name: pm.Name, PeerURLs: pm.PeerURLs, ClientURLs: pm.ClientURLs}
		if m.Name == "" {
			m.Problem = "has not started yet (no name published)"
		}
		if leader, problem := c.status(ctx, pm.ID, pm.ClientURLs); problem != "" {
			m.Problem = problem
		} else if m.Name != "" {
			m.Healthy = true
			leaders[leader]++
		}
		v.Members = append(v.Members, m)
	}
	for id, votes := range leaders {
		if id != 0 && votes > len(v.Members)/2 {
			v.LeaderID, v.Quorum = id, true
		}
	}
	for i := range v.Members {
		v.Members[i].Leader = v.Members[i].ID == v.LeaderID
	}
	return v, nil
}

// status asks the member at urls which leader it follows.
func (c *Cluster) status(ctx context.Context, id uint64, urls []string) (leader uint64, problem string) {
	if len(urls) == 0 {
		return 0, "publishes no client URL"
	}
	problem = "unreachable"
	for _, u := range urls {
		// The client waits for a connection until the timeout; a member
		// that is down refuses at once, so ask the port first.
		if err := reachable(ctx, u); err != nil {
			problem = fmt.Sprintf("%s: %v", u, err)
			continue
		}
		sctx, cancel := context.WithTimeout(ctx, statusTimeout)
		resp, err := c.client.Status(sctx, u)
		cancel()
		switch {
		case err != nil:
			problem = fmt.Sprintf("%s: %v", u, err)
		case resp.Header.MemberId != id:
			problem = fmt.Sprintf("%s answers as member %x", u, resp.Header.MemberId)
		case len(resp.Errors) > 0:
			problem = strings.Join(resp.Errors, "; ")
		case resp.Leader == 0:
			problem = "has no leader"
		default:
			return resp.Leader, ""
		}
	}
	return 0, problem
}

// reachable reports whether the host and port of client URL raw accept a
// TCP connection.
func reachable(ctx context.Context, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return fmt.Errorf("client URL %q is not a URL", raw)
	}
	dctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(dctx, "tcp", u.Host)
	if err != nil {
		return err
	}
	return conn.Close()
}

// SyncEndpoints points the connection at the other members' client URLs
// than self's, so a member's connection outlives its own restart. The
// client dials every endpoint with the scheme of its first, so only the
// URLs of the scheme most of them share are kept: during a rolling switch
// the members not restarting answer on either.
func (c *Cluster) SyncEndpoints(ctx context.Context, self string) error {
	resp, err := c.client.MemberList(ctx)
	if err != nil {
		return fmt.Errorf("etcd at %s (from %s): listing the members' client URLs: %w", strings.Join(c.cfg.Endpoints, ", "), c.cfg.Source, err)
	}
	byScheme := map[string][]string{}
	for _, m := range resp.Members {
		if m.Name == self {
			continue
		}
		for _, raw := range m.ClientURLs {
			if u, err := url.Parse(raw); err == nil {
				byScheme[u.Scheme] = append(byScheme[u.Scheme], raw)
			}
		}
	}
	eps := byScheme["https"]
	if len(byScheme["http"]) > len(eps) {
		eps = byScheme["http"]
	}
	if len(eps) == 0 {
		return nil // a one-member cluster: its own URL is all there is
	}
	client, err := newClient(ctx, c.cfg, eps)
	if err != nil {
		return err
	}
	c.client.Close()
	c.client = client
	return nil
}
