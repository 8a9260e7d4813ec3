package migrate

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/internal/inventory"
)

// Sighting is an agent a bridge's proxy saw, and how it came.
type Sighting struct {
	Member    string // the backend whose bridge saw it ("" this node)
	Namespace string
	Name      string
	Transport string // "tls" or "plaintext"
	LastSeen  time.Time
}

func (s Sighting) String() string {
	at := s.LastSeen.UTC().Format(time.RFC3339)
	if s.Member != "" {
		return fmt.Sprintf("%s/%s (last seen %s via %s)", s.Namespace, s.Name, at, s.Member)
	}
	return fmt.Sprintf("%s/%s (last seen %s)", s.Namespace, s.Name, at)
}

// AgentSightings is where apply learns which agents the bridges have
// seen, before a step that ends plaintext. LocalAgents asks this node's
// daemon; a source that gathers every member's bridge (the cluster's
// records) plugs in here, and then the gate counts the whole fleet.
type AgentSightings interface {
	Sightings(ctx context.Context) ([]Sighting, error)
}

// LocalAgents asks the sensu-tlsd daemon of this node, at its
// metrics-address, for the agents its proxy listeners have seen (/agents).
type LocalAgents struct {
	MetricsAddress string
	ConfigFile     string // named in the error when the address is off
}

// Sightings reads the daemon's /agents.
func (l LocalAgents) Sightings(ctx context.Context) ([]Sighting, error) {
	if l.MetricsAddress == "" {
		return nil, fmt.Errorf("metrics-address is off in %s, so the daemon's /agents cannot be asked: set it (and reload sensu-tlsd)", l.ConfigFile)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+l.MetricsAddress+"/agents", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("the daemon at %s did not answer /agents (is sensu-tlsd running with this config?): %v", l.MetricsAddress, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("the daemon at %s answered /agents with %s", l.MetricsAddress, resp.Status)
	}
	agents, err := inventory.DecodeAgents(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("the daemon at %s sent unreadable agents: %v", l.MetricsAddress, err)
	}
	out := make([]Sighting, 0, len(agents))
	for _, a := range agents {
		out = append(out, Sighting{Namespace: a.Namespace, Name: a.Name, Transport: a.Transport, LastSeen: a.LastSeen})
	}
	return out, nil
}

// StillPlaintext are the agents whose latest sighting, over every member
// and listener, was in plaintext, within window of now (0: any time since
// the bridges started counting). A proxy records an agent when it
// connects, and a Sensu agent stays connected for days, so an unbounded
// window is the safe default; a window leaves out agents decommissioned
// long ago.
func StillPlaintext(seen []Sighting, window time.Duration, now time.Time) []Sighting {
	latest := map[[2]string]Sighting{}
	for _, s := range seen {
		k := [2]string{s.Namespace, s.Name}
		if cur, ok := latest[k]; !ok || s.LastSeen.After(cur.LastSeen) {
			latest[k] = s
		}
	}
	var out []Sighting
	for _, s := range latest {
		if s.Transport == "plaintext" && (window <= 0 || now.Sub(s.LastSeen) <= window) {
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].Namespace+"/"+out[i].Name < out[j].Namespace+"/"+out[j].Name
	})
	return out
}

// endsPlaintext says whether bringing the node to target refuses ws://
// agents that the backend or its bridge still accepts: phase 3 after a
// bridge that lets plaintext in, or a bridge that starts refusing it.
func endsPlaintext(n *Node, st *State, target Phase) bool {
	if !n.IsBackend() {
		return false
	}
	switch target {
	case Native:
		return st.Phase < Native && !st.RefusePlaintext
	case Bridge:
		return n.RefusePlaintext != nil && *n.RefusePlaintext && (st.Phase < Bridge || !st.RefusePlaintext)
	}
	return false
}

// plaintextGate refuses a step that ends plaintext while agents still use
// it, naming them; with o.CutOff it proceeds and says what it cuts off.
func (o Options) plaintextGate(ctx context.Context, n *Node, st *State, target Phase, res *Result) error {
	if !endsPlaintext(n, st, target) {
		return nil
	}
	what := fmt.Sprintf("phase %d (%s) ends ws:// on this backend", target, target)
	if st.Phase < Bridge {
		// Nothing has counted the agents: the backend served them itself.
		if !o.CutOff {
			return fmt.Errorf("%s, and no bridge has counted the agents yet: apply phase 1 without --refuse-plaintext first, "+
				"move the agents (phase 2) and watch `sensu-tlsd status`; --force cuts off every agent still on ws://", what)
		}
		o.log(res, "--force: cutting off every agent still on ws:// (no bridge has counted them)")
		return nil
	}
	var seen []Sighting
	err := fmt.Errorf("no source of agent sightings")
	if o.Agents != nil {
		seen, err = o.Agents.Sightings(ctx)
	}
	now := time.Now()
	if o.Now != nil {
		now = o.Now()
	}
	plain := StillPlaintext(seen, o.Window, now)
	names := make([]string, len(plain))
	for i, s := range plain {
		names[i] = s.String()
	}
	if err != nil {
		// A source that answered still names what it saw (AllAgents
		// returns the other sources' sightings with the error).
		known := ""
		if len(plain) > 0 {
			known = fmt.Sprintf("; the bridges that answered saw %d agent(s) in plaintext: %s", len(plain), strings.Join(names, ", "))
		}
		if !o.CutOff {
			return fmt.Errorf("%s, and which agents still use it cannot be told: %v%s; --force proceeds and cuts off whatever is still on ws://", what, err, known)
		}
		res.CutOff = plain
		o.log(res, fmt.Sprintf("--force: which agents still use ws:// cannot be told (%v)%s; cutting off whatever is left", err, known))
		return nil
	}
	if len(plain) == 0 {
		o.log(res, fmt.Sprintf("agents: %d seen by the bridges, none still in plaintext", len(seen)))
		return nil
	}
	if !o.CutOff {
		return fmt.Errorf("%s, but %d agent(s) were seen in plaintext: %s; apply phase 2 on them (and restart them) first, or pass --force to cut them off",
			what, len(plain), strings.Join(names, ", "))
	}
	res.CutOff = plain
	o.log(res, fmt.Sprintf("--force: cutting off %d agent(s) seen in plaintext: %s", len(plain), strings.Join(names, ", ")))
	return nil
}
