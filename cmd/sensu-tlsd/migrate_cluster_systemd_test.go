package main

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/sensu-tlsd/sensu-tlsd/internal/etcdtest"
	"github.com/sensu-tlsd/sensu-tlsd/internal/standintest"
	"github.com/sensu-tlsd/sensu-tlsd/internal/systemdtest"
	"github.com/sensu-tlsd/sensu-tlsd/internal/testpeer"
)

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
	var nodes []*clusterNode
	var backends []string
	for i, m := range c.Members {
		n := newClusterNode(t, m)
		n.backendUnit, n.tlsdUnit = fmt.Sprintf("sensu-backend-%d.service", i+1), fmt.Sprintf("sensu-tlsd-%d.service", i+1)
		n.reloadTLSD = []string{"--tlsd-unit", n.tlsdUnit}
		n.writeConfig(t, c, fmt.Sprintf("service-actions:\n  systemd-address: %s\n", sys.PrivateSocket()), fmt.Sprintf(`  - name: sensu-backend
    preset: sensu-backend
    unit: %s
`, n.backendUnit))
		sys.InstallUnit(n.backendUnit, standintest.Unit(t, m.BackendYML, n.dir+"/standin.log", "--etcd", etcdBin))
		sys.InstallDropIn(n.backendUnit, "packaged", packagedBackend)
		sys.InstallUnit(n.tlsdUnit, tlsdUnit(n.cfg, n.dir))
		nodes = append(nodes, n)
		backends = append(backends, n.backendUnit)
	}
	logClusterOnFailure(t, nodes)
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
	migrateMemberByMember(t, c, nodes, func(_ *clusterNode, when string) { checkUnits(t, sys, nodes, when) })
}
