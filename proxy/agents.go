package proxy

import (
	"cmp"
	"encoding/json"
	"slices"
	"sync"
	"time"
)

// AgentSeen is one Sensu agent as a listener last saw it.
type AgentSeen struct {
	Listener  string    `json:"listener"`
	Namespace string    `json:"namespace"`
	Name      string    `json:"name"`
	Transport Transport `json:"transport"`
	LastSeen  time.Time `json:"last_seen"`
}

// agentBook records the agents a listener has seen, keyed by namespace and
// name: an agent that moved to TLS leaves the plaintext count, which is
// the number an operator watches before enforcing TLS.
type agentBook struct {
	mu     sync.Mutex
	agents map[[2]string]*AgentSeen
	counts map[Transport]int
}

// record notes h on transport t and returns the agents per transport.
func (b *agentBook) record(listener string, h AgentHello, t Transport, now time.Time) (tlsCount, plainCount int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.agents == nil {
		b.agents = make(map[[2]string]*AgentSeen)
		b.counts = make(map[Transport]int)
	}
	key := [2]string{h.Namespace, h.Name}
	a := b.agents[key]
	if a == nil {
		a = &AgentSeen{Listener: listener, Namespace: h.Namespace, Name: h.Name}
		b.agents[key] = a
	} else {
		b.counts[a.Transport]--
	}
	a.Transport, a.LastSeen = t, now
	b.counts[t]++
	return b.counts[TransportTLS], b.counts[TransportPlaintext]
}

func (b *agentBook) snapshot() []AgentSeen {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]AgentSeen, 0, len(b.agents))
	for _, a := range b.agents {
		out = append(out, *a)
	}
	slices.SortFunc(out, func(x, y AgentSeen) int {
		return cmp.Or(cmp.Compare(x.Namespace, y.Namespace), cmp.Compare(x.Name, y.Name))
	})
	return out
}

// AgentsJSON renders agents for `sensu-tlsd status` and the like.
func AgentsJSON(agents []AgentSeen) ([]byte, error) {
	return json.MarshalIndent(agents, "", "  ")
}
