package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/config/sensu"
	"github.com/sensu-tlsd/sensu-tlsd/internal/etcdtest"
	"github.com/sensu-tlsd/sensu-tlsd/internal/standintest"
	"github.com/sensu-tlsd/sensu-tlsd/internal/systemdtest"
	"github.com/sensu-tlsd/sensu-tlsd/internal/testpeer"
)

// clusterNode is one member of a three-backend cluster on one host: its
// stand-in sensu-backend (with a real etcd as the embedded one) and its
// sensu-tlsd daemon, each a unit of the same systemd.
type clusterNode struct {
	*etcdtest.Member
	dir, cfg                         string
	backendUnit, tlsdUnit            string
	api, metrics, loopAPI, loopAgent int
	original                         []byte // backend.yml as written
}

// bootClusterSystem writes three members' backend.yml and sensu-tlsd
// configs, installs their units as packaged (Restart=always within a
// start limit) and starts them: the three backends together, since each
// waits for its etcd, which waits for a quorum.
func bootClusterSystem(t *testing.T) (*systemdtest.System, *etcdtest.Cluster, []*clusterNode) {
	t.Helper()
	etcdBin, ok := etcdtest.Binary()
	testpeer.NeedPeer(t, ok, "etcd not on PATH (apt-get install etcd-server)")
	sys := systemdtest.Boot(t)
	c := etcdtest.Write(t, 3)
	apiRE := regexp.MustCompile(`api-listen-address: "127\.0\.0\.1:(\d+)"`)
	var nodes []*clusterNode
	var backends []string
	for i, m := range c.Members {
		n := &clusterNode{Member: m, dir: t.TempDir(), backendUnit: fmt.Sprintf("sensu-backend-%d.service", i+1), tlsdUnit: fmt.Sprintf("sensu-tlsd-%d.service", i+1),
			metrics: testpeer.FreePort(t), loopAPI: testpeer.FreePort(t), loopAgent: testpeer.FreePort(t)}
		n.cfg = filepath.Join(n.dir, "tlsd.yml")
		var err error
		if n.original, err = os.ReadFile(m.BackendYML); err != nil {
			t.Fatal(err)
		}
		fmt.Sscan(apiRE.FindStringSubmatch(string(n.original))[1], &n.api)
		cert := func(name, profile string, p sensu.CertPaths) string {
			return fmt.Sprintf("  - {name: %s, profile: %s, issuer: files, hosts: [localhost, 127.0.0.1], cert-file: %s, key-file: %s, ca-file: %s, trusted-ca: %s}\n",
				name, profile, p.CertFile, p.KeyFile, p.CAFile, p.CAFile)
		}
		if err := os.WriteFile(n.cfg, []byte(fmt.Sprintf(`state-dir: %s/state
metrics-address: 127.0.0.1:%d
service-actions:
  systemd-address: %s
certificates:
%s%ssensu:
  backend-config: %s
  backend-certificate: backend
  etcd-peer-certificate: peer
services:
  - name: sensu-backend
    preset: sensu-backend
    unit: %s
`, n.dir, n.metrics, sys.PrivateSocket(), cert("backend", "backend", c.Backend), cert("peer", "etcd-peer", c.Peer), m.BackendYML, n.backendUnit)), 0o644); err != nil {
			t.Fatal(err)
		}
		sys.InstallUnit(n.backendUnit, standintest.Unit(t, m.BackendYML, n.dir+"/standin.log", "--etcd", etcdBin))
		sys.InstallDropIn(n.backendUnit, "packaged", packagedBackend)
		sys.InstallUnit(n.tlsdUnit, tlsdUnit(n.cfg, n.dir))
		nodes = append(nodes, n)
		backends = append(backends, n.backendUnit)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, n := range nodes {
				t.Logf("%s:\n%s", n.Name, n.logs())
			}
		}
	})
	sys.Systemctl(append([]string{"start"}, backends...)...)
	for _, n := range nodes {
		testpeer.WaitTCP(t, fmt.Sprintf("127.0.0.1:%d", n.api))
	}
	for _, n := range nodes {
		if out, code := sys.SystemctlStatus("start", n.tlsdUnit); code != 0 {
			t.Fatalf("%s: %s", n.tlsdUnit, out)
		}
	}
	return sys, c, nodes
}

func (n *clusterNode) logs() string {
	var b strings.Builder
	for _, f := range []string{filepath.Join(n.dir, "tlsd.log"), filepath.Join(n.dir, "standin.log"), filepath.Join(filepath.Dir(n.BackendYML), n.Name, "etcd.log")} {
		data, _ := os.ReadFile(f)
		if len(data) > 3000 {
			data = data[len(data)-3000:]
		}
		fmt.Fprintf(&b, "--- %s (tail)\n%s\n", f, data)
	}
	return b.String()
}

func (n *clusterNode) migrate(t *testing.T, args ...string) result {
	t.Helper()
	return run(t, n.dir, nil, append([]string{"--config", n.cfg, "migrate"}, append(args, "--user", "root")...)...)
}

// checkUnits fails unless every unit is active and systemd never had to
// restart one (a crash would have been restarted, Restart=always, and
// enough of them would have left it failed by the start limit).
func checkUnits(t *testing.T, sys *systemdtest.System, nodes []*clusterNode, when string) {
	t.Helper()
	for _, n := range nodes {
		for _, u := range []string{n.backendUnit, n.tlsdUnit} {
			got := strings.Fields(sys.Systemctl("show", "-p", "ActiveState,NRestarts", u))
			if !slices.Contains(got, "ActiveState=active") || !slices.Contains(got, "NRestarts=0") {
				t.Fatalf("%s: %s: %q, want active and never restarted by systemd", when, u, got)
			}
		}
	}
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

// TestMigrateClusterMemberByMemberUnderSystemd drives the cutover of a
// three-member cluster through the built binary under a real systemd:
// every member's sensu-backend (the stand-in with a real etcd as its
// embedded one) and sensu-tlsd are packaged-style units of one systemd.
// `migrate apply` runs on each member in turn for phases 1 and 3 (phase
// 2, the agents', does not apply to a backend), then
// `migrate rollback` back to phase 0: peer URLs move to https and back
// through the cluster's etcd, one leader remains, writes through the other
// members never stall for an election timeout, no unit is ever restarted
// by systemd, and backend.yml ends with its original bytes.
func TestMigrateClusterMemberByMemberUnderSystemd(t *testing.T) {
	sys, c, nodes := bootClusterSystem(t)
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
			checkUnits(t, sys, nodes, what+" on "+n.Name)
		}
	}
	apply := func(phase string) func(n *clusterNode) []string {
		return func(n *clusterNode) []string {
			args := []string{"apply", "--phase", phase, "--tlsd-unit", n.tlsdUnit}
			if phase == "1" {
				args = append(args, "--bridge-api-port", fmt.Sprint(n.loopAPI), "--bridge-agent-port", fmt.Sprint(n.loopAgent))
			}
			return args
		}
	}
	rollback := func(n *clusterNode) []string { return []string{"rollback", "--tlsd-unit", n.tlsdUnit} }

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
