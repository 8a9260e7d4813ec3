package migrate

import (
	"github.com/sensu-tlsd/sensu-tlsd/internal/cluster"
)

// clusterMember reports whether n's backend.yml names more than one etcd
// member (etcd-initial-cluster); an unreadable file is no cluster here, the
// phase itself reports it.
func (n *Node) clusterMember() bool {
	if !n.IsBackend() {
		return false
	}
	b, err := cluster.ReadBackend(n.Files.Backend, n.Files.BackendEnv)
	return err == nil && b.Clustered()
}

// peerCoverageNeeds checks, for a clustered backend, that the peer
// certificate covers the addresses the member advertises and connects
// from: the other members refuse it otherwise once peer TLS is on.
func (n *Node) peerCoverageNeeds() []Need {
	b, err := cluster.ReadBackend(n.Files.Backend, n.Files.BackendEnv)
	if err != nil || !b.Clustered() {
		// An unreadable file is reported by the phase itself.
		return nil
	}
	cert := n.peer()
	return []Need{{
		What:  "etcd peer certificate covering this member's peer addresses",
		Files: []string{cert.CertFile},
		Why:   "the other members check it against the peer URLs it advertises and the address it connects from",
		set: func() error {
			if cert.CertFile == "" {
				return nil // the certificate need names the missing certificate
			}
			return cluster.CheckPeerCertificate(b, cert.CertFile)
		},
	}}
}
