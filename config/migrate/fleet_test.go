package migrate

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// unanswered is a source of sightings that cannot answer, as a cluster
// without quorum.
type unanswered struct{}

func (unanswered) Sightings(context.Context) ([]Sighting, error) {
	return nil, errors.New("etcd get /sensu-tlsd/cluster/plaintext-agents/: context deadline exceeded")
}

// The fleet's count is every source's: an agent another member saw holds
// phase 3 back, and a member that cannot be asked does not let it pass on
// the local count alone.
func TestPhase3CountsEveryMembersAgents(t *testing.T) {
	n, _ := testNode(t, "backend-packaged.yml", "")
	ctx := context.Background()
	if _, err := apply(n, Bridge); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	local := seen{{Namespace: "default", Name: "web-1", Transport: "tls", LastSeen: now}}
	others := seen{{Member: "backend-2", Namespace: "default", Name: "db-1", Transport: "plaintext", LastSeen: now.Add(-time.Hour)}}
	o := Options{Agents: AllAgents{local, others}, Now: func() time.Time { return now }}
	if _, err := Apply(ctx, n, Native, o); err == nil || !strings.Contains(err.Error(), "default/db-1 (last seen 2026-12-06T11:00:00Z via backend-2)") {
		t.Fatalf("phase 3 with an agent in plaintext on another member: %v", err)
	}
	o.Agents = AllAgents{local, unanswered{}}
	if _, err := Apply(ctx, n, Native, o); err == nil || !strings.Contains(err.Error(), "cannot be told") || !strings.Contains(err.Error(), "context deadline exceeded") {
		t.Fatalf("phase 3 with a member that cannot be asked: %v", err)
	}
	// What the sources that answered saw is still named.
	o.Agents = AllAgents{unanswered{}, others}
	if _, err := Apply(ctx, n, Native, o); err == nil || !strings.Contains(err.Error(), "cannot be told") || !strings.Contains(err.Error(), "saw 1 agent(s) in plaintext: default/db-1") {
		t.Fatalf("phase 3 with a member that cannot be asked: %v", err)
	}
	if st, _ := LoadState(n); st.Phase != Bridge {
		t.Fatalf("a refused phase 3 moved the node to %v", st.Phase)
	}
}

func TestPeerSchemeIsTheSchemeAllURLsShare(t *testing.T) {
	for _, c := range []struct {
		urls []string
		want string
	}{
		{[]string{"https://10.0.0.1:2380"}, "https"},
		{[]string{"http://10.0.0.1:2380", "http://[::1]:2380"}, "http"},
		{[]string{"http://10.0.0.1:2380", "https://10.0.0.1:2381"}, ""},
		{nil, ""},
	} {
		if got := peerScheme(c.urls); got != c.want {
			t.Errorf("peerScheme(%v) = %q, want %q", c.urls, got, c.want)
		}
	}
}
