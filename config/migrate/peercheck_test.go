package migrate

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/config/sensu"
	"github.com/sensu-tlsd/sensu-tlsd/internal/pki"
	"github.com/sensu-tlsd/sensu-tlsd/rotate/ca"
)

// A member advertising http://localhost:2380 connects to its peers from
// 127.0.0.1; a peer certificate for the name alone is refused by them once
// peer TLS is on, and a member dials the members already on https peers
// with it from its phase 1 on, so phase 1 is refused.
func TestBridgeAndNativeRefuseAPeerCertificateNotCoveringTheSourceAddress(t *testing.T) {
	n, dir := testNode(t, "backend-cluster-1.yml", "")
	src, err := os.ReadFile(n.Files.Backend)
	if err != nil {
		t.Fatal(err)
	}
	loopback := strings.NewReplacer("10.0.0.1:2380", "localhost:2380", "10.0.0.2:2380", "localhost:2381", "10.0.0.3:2380", "localhost:2382").Replace(string(src))
	if err := os.WriteFile(n.Files.Backend, []byte(loopback), 0o644); err != nil {
		t.Fatal(err)
	}
	expectNarrowPeerRefused(t, n, dir)
}

// The cluster and the peer URLs set in sensu-backend's environment file,
// which sensu-backend reads over backend.yml: the member is a cluster
// member, and its peer certificate is checked against the hosts there.
func TestPeerCheckReadsTheEnvironmentFile(t *testing.T) {
	n, dir := testNode(t, "backend-cluster-1.yml", "")
	src, err := os.ReadFile(n.Files.Backend)
	if err != nil {
		t.Fatal(err)
	}
	var kept []string
	for _, line := range strings.Split(string(src), "\n") {
		if !strings.HasPrefix(line, "etcd-initial-cluster:") && !strings.Contains(line, "-peer-urls:") {
			kept = append(kept, line)
		}
	}
	env := filepath.Join(dir, "sensu-backend")
	for path, b := range map[string]string{
		n.Files.Backend: strings.Join(kept, "\n"),
		env: "SENSU_BACKEND_ETCD_INITIAL_CLUSTER=backend-1=http://localhost:2380,backend-2=http://localhost:2381,backend-3=http://localhost:2382\n" +
			"SENSU_BACKEND_ETCD_INITIAL_ADVERTISE_PEER_URLS=http://localhost:2380\nSENSU_BACKEND_ETCD_LISTEN_PEER_URLS=http://localhost:2380\n",
	} {
		if err := os.WriteFile(path, []byte(b), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	n.Files.BackendEnv = []string{env}
	if !n.clusterMember() {
		t.Fatal("a member whose etcd-initial-cluster is in its environment file is not taken for a cluster member")
	}
	expectNarrowPeerRefused(t, n, dir)
}

// expectNarrowPeerRefused gives n a peer certificate for localhost alone
// and expects plan to show phases 1 and 3 not ready and apply to refuse
// phase 1, naming the member, the certificate file and the hosts to
// reissue with.
func expectNarrowPeerRefused(t *testing.T, n *Node, dir string) {
	t.Helper()
	tlsDir := filepath.Join(dir, "narrow")
	if err := os.MkdirAll(tlsDir, 0o755); err != nil {
		t.Fatal(err)
	}
	authority, err := ca.Init(tlsDir, ca.InitOptions{CommonName: "narrow CA", Lifetime: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	is, err := authority.Issue(ca.Request{Name: "peer", Profile: pki.EtcdPeer, Hosts: []string{"localhost"}, Lifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	p, err := ca.WriteFiles(tlsDir, "peer", is)
	if err != nil {
		t.Fatal(err)
	}
	n.EtcdPeer = Cert{Name: "peer", CertPaths: sensu.CertPaths{CertFile: p.Cert, KeyFile: p.Key, CAFile: p.CA}}
	plans, _, err := Plan(context.Background(), n, Options{CutOff: true})
	if err != nil {
		t.Fatal(err)
	}
	refused := map[Phase]bool{}
	for _, sp := range plans {
		for _, need := range sp.Needs {
			if strings.Contains(need.What, "peer addresses") && need.Check() != nil {
				refused[sp.Phase] = true
			}
		}
	}
	if !refused[Bridge] || !refused[Native] {
		t.Fatalf("plan finds the narrow peer certificate ready for phase 1 or 3 (refused: %v): %+v", refused, plans)
	}
	_, err = Apply(context.Background(), n, Bridge, Options{CutOff: true})
	if err == nil {
		t.Fatal("phase 1 applied on a cluster member with a peer certificate not covering 127.0.0.1")
	}
	for _, want := range []string{"member backend-1", n.Files.Backend, p.Cert, "does not cover 127.0.0.1", "reissue it with hosts localhost, 127.0.0.1"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal lacks %q: %v", want, err)
		}
	}
}
