package proxy

import (
	"fmt"
	"testing"
	"time"
)

// TestAgentBookIsBounded: invented names cannot grow the book past its
// bound; the agent seen least recently goes first and the per-transport
// counts stay true.
func TestAgentBookIsBounded(t *testing.T) {
	b := agentBook{max: 3}
	now := time.Now()
	for i := range 3 {
		b.record("l", AgentHello{Namespace: "default", Name: fmt.Sprint("agent-", i)}, TransportPlaintext, now)
	}
	b.record("l", AgentHello{Namespace: "default", Name: "agent-0"}, TransportTLS, now) // seen again: now the newest
	tlsN, plainN := b.record("l", AgentHello{Namespace: "default", Name: "intruder"}, TransportTLS, now)
	got := map[string]Transport{}
	for _, a := range b.snapshot() {
		got[a.Name] = a.Transport
	}
	if len(got) != 3 || got["agent-1"] != "" || got["agent-0"] != TransportTLS || got["intruder"] != TransportTLS || got["agent-2"] != TransportPlaintext {
		t.Fatalf("book after overflow = %v, want agent-1 (least recently seen) forgotten", got)
	}
	if tlsN != 2 || plainN != 1 {
		t.Fatalf("counts tls=%d plaintext=%d, want 2 and 1", tlsN, plainN)
	}
}
