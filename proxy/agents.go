package proxy

import (
	"cmp"
	"container/list"
	"encoding/json"
	"slices"
	"strings"
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

// maxAgents bounds the agents one listener remembers. Agent names come
// from clients before any authentication, so without a bound a client
// inventing names would grow the book without end; this is above the
// largest Sensu clusters and costs about 30 MB of heap when full of names
// that keep changing, twice that in RSS at the default GOGC (bench/leak.sh,
// docs/benchmarks.md).
const maxAgents = 100_000

// agentBook records the agents a listener has seen, keyed by namespace and
// name: an agent that moved to TLS leaves the plaintext count, which is
// the number an operator watches before enforcing TLS. When full, the
// agent seen least recently is forgotten.
type agentBook struct {
	mu     sync.Mutex
	max    int // 0 means maxAgents
	agents map[[2]string]*list.Element
	order  list.List // of *AgentSeen, most recently seen first
	counts map[Transport]int
}

// record notes h on transport t and returns the agents per transport.
func (b *agentBook) record(listener string, h AgentHello, t Transport, now time.Time) (tlsCount, plainCount int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.agents == nil {
		b.agents = make(map[[2]string]*list.Element)
		b.counts = make(map[Transport]int)
	}
	key := [2]string{h.Namespace, h.Name}
	var a *AgentSeen
	if e := b.agents[key]; e != nil {
		b.order.MoveToFront(e)
		a = e.Value.(*AgentSeen)
		b.counts[a.Transport]--
	} else {
		if b.order.Len() >= cmp.Or(b.max, maxAgents) {
			old := b.order.Remove(b.order.Back()).(*AgentSeen)
			delete(b.agents, [2]string{old.Namespace, old.Name})
			b.counts[old.Transport]--
		}
		// Cloned, so the entry does not keep the whole request head alive.
		a = &AgentSeen{Listener: listener, Namespace: strings.Clone(h.Namespace), Name: strings.Clone(h.Name)}
		b.agents[[2]string{a.Namespace, a.Name}] = b.order.PushFront(a)
	}
	a.Transport, a.LastSeen = t, now
	b.counts[t]++
	return b.counts[TransportTLS], b.counts[TransportPlaintext]
}

func (b *agentBook) snapshot() []AgentSeen {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]AgentSeen, 0, b.order.Len())
	for e := b.order.Front(); e != nil; e = e.Next() {
		out = append(out, *e.Value.(*AgentSeen))
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
