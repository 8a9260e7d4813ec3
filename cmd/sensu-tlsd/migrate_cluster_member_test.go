package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/config/sensu"
	"github.com/sensu-tlsd/sensu-tlsd/internal/etcdtest"
	"github.com/sensu-tlsd/sensu-tlsd/internal/standintest"
	"github.com/sensu-tlsd/sensu-tlsd/internal/testpeer"
)

// clusterNode is one member of a three-backend cluster on one host: its
// stand-in sensu-backend (with a real etcd as the embedded one) and its
// sensu-tlsd daemon, run by systemd or by a supervisor.
type clusterNode struct {
	*etcdtest.Member
	dir, cfg                         string
	api, metrics, loopAPI, loopAgent int
	original                         []byte   // backend.yml as written
	reloadTLSD                       []string // the migrate flags that say how its daemon is reloaded
	backendUnit, tlsdUnit            string   // under systemd only
}

var apiPortRE = regexp.MustCompile(`api-listen-address: "127\.0\.0\.1:(\d+)"`)

// newClusterNode is member m with its own directory and ports.
func newClusterNode(t *testing.T, m *etcdtest.Member) *clusterNode {
	t.Helper()
	n := &clusterNode{Member: m, dir: t.TempDir(), metrics: testpeer.FreePort(t), loopAPI: testpeer.FreePort(t), loopAgent: testpeer.FreePort(t)}
	n.cfg = filepath.Join(n.dir, "tlsd.yml")
	var err error
	if n.original, err = os.ReadFile(m.BackendYML); err != nil {
		t.Fatal(err)
	}
	fmt.Sscan(apiPortRE.FindStringSubmatch(string(n.original))[1], &n.api)
	return n
}

// writeConfig writes the member's sensu-tlsd config: the cluster's backend
// and etcd-peer certificates (issued outside, followed), its backend.yml,
// then head (top-level keys) and services (the entries of services:).
func (n *clusterNode) writeConfig(t *testing.T, c *etcdtest.Cluster, head, services string) {
	t.Helper()
	cert := func(name, profile string, p sensu.CertPaths) string {
		return fmt.Sprintf("  - {name: %s, profile: %s, issuer: files, hosts: [localhost, 127.0.0.1], cert-file: %s, key-file: %s, ca-file: %s, trusted-ca: %s}\n",
			name, profile, p.CertFile, p.KeyFile, p.CAFile, p.CAFile)
	}
	if err := os.WriteFile(n.cfg, []byte(fmt.Sprintf(`state-dir: %s/state
metrics-address: 127.0.0.1:%d
%scertificates:
%s%ssensu:
  backend-config: %s
  backend-certificate: backend
  etcd-peer-certificate: peer
services:
%s`, n.dir, n.metrics, head, cert("backend", "backend", c.Backend), cert("peer", "etcd-peer", c.Peer), n.BackendYML, services)), 0o644); err != nil {
		t.Fatal(err)
	}
}

// logs is the tail of each log the member has (a daemon that systemd does
// not run logs to the test instead).
func (n *clusterNode) logs() string {
	var b strings.Builder
	for _, f := range []string{filepath.Join(n.dir, "tlsd.log"), filepath.Join(n.dir, "standin.log"), filepath.Join(filepath.Dir(n.BackendYML), n.Name, "etcd.log")} {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if len(data) > 3000 {
			data = data[len(data)-3000:]
		}
		fmt.Fprintf(&b, "--- %s (tail)\n%s\n", f, data)
	}
	return b.String()
}

// logClusterOnFailure logs every member's logs when the test fails.
func logClusterOnFailure(t *testing.T, nodes []*clusterNode) {
	t.Cleanup(func() {
		if t.Failed() {
			for _, n := range nodes {
				t.Logf("%s:\n%s", n.Name, n.logs())
			}
		}
	})
}

func (n *clusterNode) migrate(t *testing.T, args ...string) result {
	t.Helper()
	return run(t, n.dir, nil, append([]string{"--config", n.cfg, "migrate"}, append(args, "--user", "root")...)...)
}

// checkFleet reads `migrate status --cluster --json` on via and checks
// three healthy members, one leader, quorum, every stored peer URL of
// scheme and every member's recorded phase.
func checkFleet(t *testing.T, via *clusterNode, scheme, phase string) {
	t.Helper()
	var s clusterStatus
	r := via.migrate(t, "status", "--cluster", "--json")
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
		t.Fatalf("status --cluster --json: exit %d: %v\n%s%s", r.code, err, r.stdout, r.stderr)
	}
	leaders := 0
	for _, m := range s.Members {
		if m.Leader {
			leaders++
		}
		if !m.Healthy {
			t.Errorf("member %s unhealthy: %s", m.Name, m.Problem)
		}
		for _, u := range m.PeerURLs {
			if !strings.HasPrefix(u, scheme+"://") {
				t.Errorf("member %s: etcd stores peer URL %s, want %s", m.Name, u, scheme)
			}
		}
	}
	if len(s.Members) != 3 || leaders != 1 || !s.Quorum || len(s.Drift) != 0 {
		t.Errorf("want 3 members, one leader, quorum, no drift; got %d members, %d leaders, quorum %v, drift %v", len(s.Members), leaders, s.Quorum, s.Drift)
	}
	if len(s.Phases) != 3 {
		t.Errorf("recorded phases %+v, want one per member", s.Phases)
	}
	for _, p := range s.Phases {
		if p.Phase != phase {
			t.Errorf("member %s recorded phase %q, want %s", p.Member, p.Phase, phase)
		}
	}
}

// migrateMemberByMember walks a running three-member cluster through
// `migrate apply` of phases 1 and 3 on each member in turn (phase 2, the
// agents', does not apply to a backend), then `migrate rollback` back to
// phase 0, the way an operator would: peer URLs move to https and back
// through the cluster's etcd, one leader remains, writes through the other
// members never stall for an election timeout, and backend.yml ends with
// its original bytes. check runs after every member's turn, with the
// member and a description of the turn.
func migrateMemberByMember(t *testing.T, c *etcdtest.Cluster, nodes []*clusterNode, check func(n *clusterNode, when string)) {
	t.Helper()
	p := etcdtest.StartWriteProbe(t, c, 20*time.Millisecond)
	// round runs args on each member in turn; its output must show want
	// in order and the member's phase recorded in the cluster.
	round := func(what string, args func(n *clusterNode) []string, recorded string, want ...string) {
		t.Helper()
		for _, n := range nodes {
			var r result
			var took time.Duration
			gap := p.Turn(n.Member, func() {
				began := time.Now()
				r = n.migrate(t, args(n)...)
				took = time.Since(began)
			})
			if r.code != 0 {
				t.Fatalf("%s on %s: exit %d\nstdout:\n%s\nstderr:\n%s", what, n.Name, r.code, r.stdout, r.stderr)
			}
			inOrder(t, what+" on "+n.Name, r.stdout, want...)
			if rec := fmt.Sprintf("recorded: member %s at %s in the cluster", n.Name, recorded); !strings.Contains(r.stdout, rec) {
				t.Errorf("%s on %s: no %q in:\n%s", what, n.Name, rec, r.stdout)
			}
			t.Logf("%s on %s in %v; longest write gap through the other members %v", what, n.Name, took.Round(time.Millisecond), gap.Round(time.Millisecond))
			if gap >= etcdtest.ElectionTimeout {
				t.Errorf("%s on %s: writes through a member failed for %v, longer than the election timeout %v", what, n.Name, gap, etcdtest.ElectionTimeout)
			}
			check(n, what+" on "+n.Name)
		}
	}
	apply := func(phase string) func(n *clusterNode) []string {
		return func(n *clusterNode) []string {
			args := append([]string{"apply", "--phase", phase}, n.reloadTLSD...)
			if phase == "1" {
				args = append(args, "--bridge-api-port", fmt.Sprint(n.loopAPI), "--bridge-agent-port", fmt.Sprint(n.loopAgent))
			}
			return args
		}
	}
	rollback := func(n *clusterNode) []string { return append([]string{"rollback"}, n.reloadTLSD...) }

	round("apply --phase 1", apply("1"), "phase 1 (bridge)", "done: restart sensu-backend", "done: reload sensu-tlsd", "applied: phase 0 (plaintext) -> phase 1 (bridge)")
	checkFleet(t, nodes[0], "http", "bridge")
	// Phase 2 is the agents' phase: a member without an agent has none.
	for _, n := range nodes {
		if r := n.migrate(t, apply("2")(n)...); r.code == 0 || !strings.Contains(r.stderr, "phase 2 (agents) does not apply to this node: no agent on this node; its phases are 1 (bridge), 3 (native)") {
			t.Fatalf("apply --phase 2 on %s: exit %d\n%s%s", n.Name, r.code, r.stdout, r.stderr)
		}
	}
	round("apply --phase 3", apply("3"), "phase 3 (native)", "done: reload sensu-tlsd", "done: restart sensu-backend", "applied: phase 1 (bridge) -> phase 3 (native)")
	checkFleet(t, nodes[1], "https", "native")
	for _, n := range nodes {
		if u := n.ClientURL(t); !strings.HasPrefix(u, "https://") {
			t.Errorf("%s: phase 3 left the client URL %s", n.Name, u)
		}
		if err := servesTLS(n.api); err != nil {
			t.Errorf("%s: the backend serving TLS itself: %v", n.Name, err)
		}
	}

	round("rollback of phase 3", rollback, "phase 1 (bridge)", "done: restart sensu-backend", "done: reload sensu-tlsd", "rolled back: phase 3 (native) -> phase 1 (bridge)")
	checkFleet(t, nodes[2], "http", "bridge")
	// The order the old notes got wrong: the proxy lets the ports go first.
	round("rollback of phase 1", rollback, "phase 0 (plaintext)", "done: reload sensu-tlsd", "done: restart sensu-backend", "rolled back: phase 1 (bridge) -> phase 0 (plaintext)")
	checkFleet(t, nodes[0], "http", "plaintext")
	for _, n := range nodes {
		if b, _ := os.ReadFile(n.BackendYML); string(b) != string(n.original) {
			t.Errorf("%s after the rollback differs from the original:\n%s", n.BackendYML, b)
		}
		if err := httpOK(fmt.Sprintf("http://127.0.0.1:%d/health", n.api)); err != nil {
			t.Errorf("%s on its public port after the rollback: %v", n.Name, err)
		}
	}
}

// TestMigrateClusterMemberByMemberWithCommands is the member-by-member
// cutover where systemd runs nothing: each member's sensu-backend is kept
// running by a supervisor and its services entry restarts it with a
// command and stops it with its stop-command (phase 3 and its rollback
// keep it down while etcd moves its peer URLs), and migrate reloads the
// daemon through the services entry --tlsd-service names (SIGHUP to its
// pid file). Each turn starts the member's backend exactly once more,
// the turns that move peer URLs run its stop-command once, and every
// daemon keeps running.
func TestMigrateClusterMemberByMemberWithCommands(t *testing.T) {
	etcdBin, ok := etcdtest.Binary()
	testpeer.NeedPeer(t, ok, "etcd not on PATH (apt-get install etcd-server)")
	standin := standintest.Binary(t)
	c := etcdtest.Write(t, 3)
	var nodes []*clusterNode
	backends := map[*clusterNode]*supervisor{}
	var daemons []*daemonProc
	for _, m := range c.Members {
		n := newClusterNode(t, m)
		hold, pidFile, stops := filepath.Join(n.dir, "hold"), filepath.Join(n.dir, "standin.pid"), filepath.Join(n.dir, "stops")
		log, err := os.OpenFile(filepath.Join(n.dir, "standin.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { log.Close() })
		n.reloadTLSD = []string{"--tlsd-service", "sensu-tlsd"}
		n.writeConfig(t, c, "", fmt.Sprintf(`  - name: sensu-backend
    preset: sensu-backend
    action: command
    command: [/bin/sh, -c, '%[1]s']
    stop-command: [/bin/sh, -c, '%[2]s']
    health: {timeout: 60s}
  - name: sensu-tlsd
    action: signal
    signal: HUP
    pid-file: %[3]s/tlsd.pid
    health: {url: "http://127.0.0.1:%[4]d/healthz"}
`, killAndWait(pidFile, "rm -f "+hold+"; "), killAndWait(pidFile, "touch "+hold+"; echo >>"+stops+"; "), n.dir, n.metrics))
		backends[n] = supervise(t, pidFile, unlessHeld(hold), func() *exec.Cmd {
			p := exec.Command(standin, "-c", n.BackendYML, "--etcd", etcdBin)
			p.Stdout, p.Stderr = log, log
			return p
		})
		nodes = append(nodes, n)
	}
	logClusterOnFailure(t, nodes)
	for _, n := range nodes {
		testpeer.WaitTCP(t, fmt.Sprintf("127.0.0.1:%d", n.api))
	}
	for _, n := range nodes {
		d := daemonStart(t, n.dir, n.cfg)
		if err := os.WriteFile(filepath.Join(n.dir, "tlsd.pid"), []byte(fmt.Sprint(d.cmd.Process.Pid)), 0o644); err != nil {
			t.Fatal(err)
		}
		testpeer.WaitFor(t, 30*time.Second, n.Name+"'s sensu-tlsd healthy", func() bool {
			return httpOK(fmt.Sprintf("http://127.0.0.1:%d/healthz", n.metrics)) == nil
		})
		daemons = append(daemons, d)
	}

	turns, stopped := map[*clusterNode]int32{}, map[*clusterNode]int{}
	migrateMemberByMember(t, c, nodes, func(turned *clusterNode, when string) {
		t.Helper()
		turns[turned]++
		if strings.HasPrefix(when, "apply --phase 3 ") || strings.HasPrefix(when, "rollback of phase 3 ") {
			stopped[turned]++ // etcd moved its peer URLs while it was down
		}
		for _, n := range nodes {
			if got, want := backends[n].starts.Load(), 1+turns[n]; got != want {
				t.Fatalf("%s: %s's backend was started %d times, want %d: once, then once per turn", when, n.Name, got, want)
			}
			b, _ := os.ReadFile(filepath.Join(n.dir, "stops"))
			if got := bytes.Count(b, []byte("\n")); got != stopped[n] {
				t.Fatalf("%s: %s's stop-command ran %d times, want %d: once in each turn that moves its peer URLs", when, n.Name, got, stopped[n])
			}
		}
		for i, d := range daemons {
			select {
			case <-d.done:
				t.Fatalf("%s: %s's sensu-tlsd exited", when, nodes[i].Name)
			default:
			}
		}
	})
}
