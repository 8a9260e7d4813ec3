package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/config/migrate"
	"github.com/sensu-tlsd/sensu-tlsd/internal/cluster"
)

// clusterStatusTimeout bounds `migrate status --cluster`: a member that does
// not answer is reported, the others are still shown. liveDriftTimeout
// bounds the live drift check of plain `migrate status`.
const (
	clusterStatusTimeout = 30 * time.Second
	liveDriftTimeout     = 5 * time.Second
)

// clusterStatus is what `migrate status --cluster` shows, and its --json.
type clusterStatus struct {
	Source          string                 `json:"source"`
	Endpoints       []string               `json:"endpoints"`
	Quorum          bool                   `json:"quorum"`
	Leader          string                 `json:"leader,omitempty"`
	Members         []cluster.Member       `json:"members"`
	Phases          []cluster.PhaseRecord  `json:"phases"`
	PlaintextAgents []cluster.AgentsRecord `json:"plaintext_agents"`
	Drift           []string               `json:"drift"`
}

// readClusterStatus opens the cluster the way this member's backend does
// (its backend.yml's etcd client URLs and certificate; the backend
// certificate of the sensu-tlsd config when the file names none yet, so a
// member still on plaintext can see members already on TLS).
func readClusterStatus(n *migrate.Node, timeout time.Duration) (*clusterStatus, error) {
	if !n.IsBackend() {
		return nil, fmt.Errorf("status --cluster: this node has no backend.yml: run it on a backend, or name the file with --backend-config")
	}
	b, err := cluster.ReadBackend(n.Files.Backend, n.Files.BackendEnv)
	if err != nil {
		return nil, err
	}
	cfg := n.ClusterConfig(b)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := cluster.Open(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	v, err := c.Members(ctx)
	if err != nil {
		return nil, err
	}
	s := &clusterStatus{Source: b.File, Endpoints: cfg.Endpoints, Quorum: v.Quorum, Members: v.Members, Drift: cluster.Drift(v, b)}
	if l, ok := v.Leader(); ok {
		s.Leader = l.Name
	}
	if s.Phases, err = c.Phases(ctx); err != nil {
		return nil, err
	}
	if s.PlaintextAgents, err = c.PlaintextAgents(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

func printClusterStatus(out io.Writer, s *clusterStatus, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(s)
	}
	quorum := "NO: the cluster cannot commit writes"
	if s.Quorum {
		quorum = "yes"
	}
	leader := s.Leader
	if leader == "" {
		leader = "none"
	}
	fmt.Fprintf(out, "cluster: %d members via %s (from %s); leader %s; quorum %s\n", len(s.Members), strings.Join(s.Endpoints, ","), s.Source, leader, quorum)
	phases := map[string]cluster.PhaseRecord{}
	for _, p := range s.Phases {
		phases[p.Member] = p
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "MEMBER\tID\tPEER URLS (etcd)\tCLIENT URLS\tHEALTH\tPHASE")
	for _, m := range s.Members {
		health := "healthy"
		if !m.Healthy {
			health = "DOWN: " + m.Problem
		} else if m.Leader {
			health = "healthy, leader"
		}
		phase := "not recorded"
		if p, ok := phases[m.Name]; ok {
			phase = fmt.Sprintf("%s (%s)", p.Phase, p.At.Format(time.RFC3339))
		}
		fmt.Fprintf(tw, "%s\t%x\t%s\t%s\t%s\t%s\n", m.Name, m.ID, strings.Join(m.PeerURLs, ","), strings.Join(m.ClientURLs, ","), health, phase)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(s.PlaintextAgents) == 0 {
		fmt.Fprintln(out, "plaintext agents: none reported")
	}
	for _, r := range s.PlaintextAgents {
		var names []string
		for _, a := range r.Agents {
			name := a.Name
			if a.Namespace != "" {
				name = a.Namespace + "/" + a.Name
			}
			names = append(names, fmt.Sprintf("%s (last seen %s)", name, a.LastSeen.Format(time.RFC3339)))
		}
		if len(names) == 0 {
			names = []string{"none"}
		}
		fmt.Fprintf(out, "plaintext agents on %s: %s\n", r.Member, strings.Join(names, ", "))
	}
	if len(s.Drift) == 0 {
		fmt.Fprintln(out, "live drift: none (etcd's view matches "+s.Source+")")
	}
	for _, d := range s.Drift {
		fmt.Fprintln(out, "live drift:", d)
	}
	return nil
}

// printLiveDrift adds to plain `migrate status` on a clustered backend what
// the cluster's etcd says against this member's backend.yml.
func printLiveDrift(out io.Writer, n *migrate.Node) {
	if !n.IsBackend() {
		return
	}
	if b, err := cluster.ReadBackend(n.Files.Backend, n.Files.BackendEnv); err != nil || !b.Clustered() {
		return
	}
	s, err := readClusterStatus(n, liveDriftTimeout)
	switch {
	case err != nil:
		fmt.Fprintf(out, "live drift: unknown, the cluster's etcd did not answer: %v\n", err)
	case len(s.Drift) == 0:
		fmt.Fprintln(out, "live drift: none (etcd's view matches "+s.Source+"); migrate status --cluster shows every member")
	}
	if s != nil {
		for _, d := range s.Drift {
			fmt.Fprintln(out, "live drift:", d)
		}
	}
}
