package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/internal/cluster"
	"github.com/sensu-tlsd/sensu-tlsd/internal/etcdtest"
	"github.com/sensu-tlsd/sensu-tlsd/internal/testpeer"
)

// `migrate status --cluster` on any member of a real three-member etcd
// shows the whole fleet (members, peer URLs as etcd stores them, leader,
// quorum, recorded phases and plaintext agents) and reports a member whose
// backend.yml advertises peer URLs etcd does not store as live drift.
func TestMigrateStatusClusterShowsTheFleetAndLiveDrift(t *testing.T) {
	c := etcdtest.Start(t, 3)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	co := clusterClient(t, ctx, c.Members[1])
	for _, m := range c.Members {
		if err := co.RecordPhase(ctx, m.Name, "agents", ""); err != nil {
			t.Fatal(err)
		}
	}
	seen := time.Date(2026, 12, 6, 16, 0, 0, 0, time.UTC)
	if err := co.RecordPlaintextAgents(ctx, "backend-2", []cluster.AgentSeen{{Name: "app-7", LastSeen: seen}}); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "tlsd.yml")
	if err := os.WriteFile(cfg, []byte("state-dir: "+filepath.Join(dir, "state")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	status := func(member *etcdtest.Member, extra ...string) result {
		return mustRun(t, dir, nil, append([]string{"--config", cfg, "migrate", "status", "--cluster", "--backend-config", member.BackendYML}, extra...)...)
	}

	out := status(c.Members[2]).stdout
	for _, want := range []string{"cluster: 3 members via http://127.0.0.1:", "quorum yes", "plaintext agents on backend-2: app-7 (last seen 2026-12-06T16:00:00Z)",
		"live drift: none"} {
		if !strings.Contains(out, want) {
			t.Errorf("status --cluster lacks %q:\n%s", want, out)
		}
	}
	for _, m := range c.Members {
		if !regexp.MustCompile(m.Name + `\s+[0-9a-f]+\s+http://127\.0\.0\.1:\d+\s+http://127\.0\.0\.1:\d+\s+healthy.*agents \(`).MatchString(out) {
			t.Errorf("status --cluster has no healthy row for %s at phase agents:\n%s", m.Name, out)
		}
	}
	if n := strings.Count(out, "healthy, leader"); n != 1 {
		t.Errorf("%d leaders shown:\n%s", n, out)
	}

	var js clusterStatus
	if err := json.Unmarshal([]byte(status(c.Members[0], "--json").stdout), &js); err != nil {
		t.Fatal(err)
	}
	if !js.Quorum || js.Leader == "" || len(js.Members) != 3 || len(js.Phases) != 3 || len(js.PlaintextAgents) != 1 || len(js.Drift) != 0 {
		t.Errorf("status --cluster --json: %+v", js)
	}

	// backend-1's file now advertises https peers (as phase 3 writes it)
	// while etcd still stores http: the running member does not match.
	src, err := os.ReadFile(c.Members[0].BackendYML)
	if err != nil {
		t.Fatal(err)
	}
	edited := regexp.MustCompile(`(etcd-initial-advertise-peer-urls: ")http`).ReplaceAll(src, []byte("${1}https"))
	if err := os.WriteFile(c.Members[0].BackendYML, edited, 0o644); err != nil {
		t.Fatal(err)
	}
	out = status(c.Members[0]).stdout
	if !regexp.MustCompile(`live drift: etcd stores peer URLs http://127\.0\.0\.1:\d+ for backend-1 but .*backend-1\.yml advertises https://127\.0\.0\.1:\d+`).MatchString(out) {
		t.Errorf("status --cluster shows no peer URL drift for backend-1:\n%s", out)
	}
	plain := mustRun(t, dir, nil, "--config", cfg, "migrate", "status", "--backend-config", c.Members[0].BackendYML).stdout
	if !strings.Contains(plain, "live drift: etcd stores peer URLs http://127.0.0.1:") {
		t.Errorf("plain migrate status on a clustered backend shows no live drift:\n%s", plain)
	}
	if plain := mustRun(t, dir, nil, "--config", cfg, "migrate", "status", "--backend-config", c.Members[1].BackendYML).stdout; !strings.Contains(plain, "live drift: none") {
		t.Errorf("plain migrate status on backend-2:\n%s", plain)
	}
	if r := run(t, dir, nil, "--config", cfg, "migrate", "status", "--json", "--backend-config", c.Members[0].BackendYML); r.code == 0 || !strings.Contains(r.stderr, "--json goes with --cluster") {
		t.Errorf("status --json without --cluster: exit %d %s", r.code, r.stderr)
	}
}

// On a cluster member, `migrate apply` records the member's phase in the
// cluster's etcd, and `migrate plan` refuses phase 3 while another
// member's daemon published an agent its bridge saw in plaintext, naming
// the agent, that member and when.
func TestMigratePlanOnAMemberCountsTheFleetsAgents(t *testing.T) {
	c := etcdtest.Start(t, 3)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "tlsd.yml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`state-dir: %s
certificates:
  - {name: backend, profile: backend, hosts: [localhost, 127.0.0.1], cert-file: %s, key-file: %s, ca-file: %s}
  - {name: peer, profile: etcd-peer, hosts: [localhost, 127.0.0.1], cert-file: %s, key-file: %s, ca-file: %s}
sensu:
  backend-certificate: backend
  etcd-peer-certificate: peer
`, filepath.Join(dir, "state"), c.Backend.CertFile, c.Backend.KeyFile, c.Backend.CAFile, c.Peer.CertFile, c.Peer.KeyFile, c.Peer.CAFile)), 0o644); err != nil {
		t.Fatal(err)
	}
	self, other := c.Members[0], c.Members[1]
	mustRun(t, dir, nil, "--config", cfg, "migrate", "apply", "--phase", "1", "--print-only", "--user", "root", "--backend-config", self.BackendYML,
		"--bridge-api-port", fmt.Sprint(testpeer.FreePort(t)), "--bridge-agent-port", fmt.Sprint(testpeer.FreePort(t)))

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	co := clusterClient(t, ctx, other)
	phases, err := co.Phases(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(phases) != 1 || phases[0].Member != self.Name || phases[0].Phase != "bridge" {
		t.Errorf("recorded phases after phase 1 on %s: %+v", self.Name, phases)
	}
	seen := time.Date(2026, 12, 6, 16, 0, 0, 0, time.UTC)
	if err := co.RecordPlaintextAgents(ctx, other.Name, []cluster.AgentSeen{{Namespace: "default", Name: "app-7", LastSeen: seen}}); err != nil {
		t.Fatal(err)
	}
	r := run(t, dir, nil, "--config", cfg, "migrate", "plan", "--user", "root", "--backend-config", self.BackendYML)
	want := "default/app-7 (last seen 2026-12-06T16:00:00Z via " + other.Name + ")"
	if r.code == 0 || !strings.Contains(r.stdout, "REFUSED: ") || !strings.Contains(r.stdout, want) {
		t.Errorf("plan on %s with app-7 in plaintext on %s: exit %d, want a refusal naming %q\nstdout:\n%s\nstderr:\n%s", self.Name, other.Name, r.code, want, r.stdout, r.stderr)
	}
}

// The daemon's publisher follows a reload: a bridge whose configuration
// names no backend publishes nothing, and once SIGHUP names a cluster
// member's backend.yml, the agent its bridge sees in plaintext reaches the
// cluster's records at once, under that member's name.
func TestDaemonPublishesForTheMemberAReloadNames(t *testing.T) {
	c := etcdtest.Start(t, 3)
	n := startAgentNode(t, 0)
	self, other := c.Members[0], c.Members[1]
	f, err := os.OpenFile(n.bridgeConfig, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "sensu:\n  backend-config: %s\n  backend-env-files: []\n", self.BackendYML)
	f.Close()
	n.bridge.signal(syscall.SIGHUP)
	n.bridge.waitLog(`configuration reloaded`, 30*time.Second)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	co := clusterClient(t, ctx, other)
	var recs []cluster.AgentsRecord
	// Well within PublishInterval (30 s): the reload publishes at once.
	testpeer.WaitFor(t, 10*time.Second, "agent-1 in the cluster's plaintext records under "+self.Name, func() bool {
		recs, err = co.PlaintextAgents(ctx)
		return err == nil && len(recs) == 1 && recs[0].Member == self.Name && len(recs[0].Agents) == 1 && recs[0].Agents[0].Name == "agent-1"
	})
}

// clusterClient is a client of the cluster through member m, closed when
// the test ends.
func clusterClient(t *testing.T, ctx context.Context, m *etcdtest.Member) *cluster.Cluster {
	t.Helper()
	co, err := cluster.Open(ctx, cluster.Config{Endpoints: []string{m.ClientURL(t)}, Source: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { co.Close() })
	return co
}
