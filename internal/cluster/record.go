package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// PhaseRecord is what a member last reported about its migration.
type PhaseRecord struct {
	Member  string    `json:"member"`
	Phase   string    `json:"phase"`
	Details string    `json:"details,omitempty"`
	At      time.Time `json:"at"`
}

// AgentSeen is an agent a member saw connect in plaintext.
type AgentSeen struct {
	Namespace string    `json:"namespace,omitempty"`
	Name      string    `json:"name"`
	LastSeen  time.Time `json:"last_seen"`
}

// AgentsRecord is the plaintext agents one member reported.
type AgentsRecord struct {
	Member string      `json:"member"`
	Agents []AgentSeen `json:"agents"`
	At     time.Time   `json:"at"`
}

const (
	phasePrefix  = KeyPrefix + "phase/"
	agentsPrefix = KeyPrefix + "plaintext-agents/"
)

// RecordPhase stores member's phase for every member to read.
func (c *Cluster) RecordPhase(ctx context.Context, member, phase, details string) error {
	return c.put(ctx, phasePrefix+member, PhaseRecord{Member: member, Phase: phase, Details: details, At: time.Now().UTC()})
}

// Phases returns every member's recorded phase, by member name.
func (c *Cluster) Phases(ctx context.Context) ([]PhaseRecord, error) {
	var out []PhaseRecord
	err := c.list(ctx, phasePrefix, func() any { out = append(out, PhaseRecord{}); return &out[len(out)-1] })
	return out, err
}

// RecordPlaintextAgents stores the agents member still sees in plaintext,
// replacing what it reported before.
func (c *Cluster) RecordPlaintextAgents(ctx context.Context, member string, agents []AgentSeen) error {
	return c.put(ctx, agentsPrefix+member, AgentsRecord{Member: member, Agents: agents, At: time.Now().UTC()})
}

// PlaintextAgents returns what every member reported, by member name.
func (c *Cluster) PlaintextAgents(ctx context.Context) ([]AgentsRecord, error) {
	var out []AgentsRecord
	err := c.list(ctx, agentsPrefix, func() any { out = append(out, AgentsRecord{}); return &out[len(out)-1] })
	return out, err
}

func (c *Cluster) put(ctx context.Context, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if _, err := c.client.Put(ctx, key, string(b)); err != nil {
		return fmt.Errorf("etcd put %s: %w", key, err)
	}
	return nil
}

// list decodes every value under prefix into a new element from next,
// in key order.
func (c *Cluster) list(ctx context.Context, prefix string, next func() any) error {
	values, err := c.List(ctx, prefix)
	if err != nil {
		return err
	}
	for _, v := range values {
		if err := json.Unmarshal(v.Data, next()); err != nil {
			return fmt.Errorf("etcd key %s holds no sensu-tlsd record (%v): delete it with `etcdctl del %s`", v.Key, err, v.Key)
		}
	}
	return nil
}
