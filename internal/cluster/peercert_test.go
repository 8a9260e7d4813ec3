package cluster

import (
	"slices"
	"strings"
	"testing"

	"github.com/sensu-tlsd/sensu-tlsd/config/sensu"
)

// A member's peer hosts come from sensu.Node.PeerHosts, the linter's and
// the issuer's hosts too, so migrate checks the certificate they made.
func TestBackendOfTakesThePeerHostsSensuKnows(t *testing.T) {
	d, err := sensu.Parse("backend.yml", []byte(`etcd-initial-advertise-peer-urls: "https://localhost:2380"
etcd-listen-peer-urls: "https://127.0.0.1:2380"
`))
	if err != nil {
		t.Fatal(err)
	}
	b := BackendOf(sensu.NodeOf(sensu.Backend, d), "backend.yml")
	if want := []string{"localhost", "127.0.0.1"}; !slices.Equal(b.PeerHosts, want) {
		t.Errorf("PeerHosts = %v, want %v", b.PeerHosts, want)
	}
}

func TestCheckPeerCertificateRefusesAPeerURLWithoutAScheme(t *testing.T) {
	err := CheckPeerCertificate(&Backend{File: "backend.yml", AdvertisePeerURLs: []string{"10.0.0.1:2380"}}, "/nonexistent/peer.pem")
	if err == nil || !strings.Contains(err.Error(), `backend.yml: etcd-initial-advertise-peer-urls "10.0.0.1:2380" is not a URL: write it as http(s)://HOST:PORT`) {
		t.Errorf("a peer URL without a scheme: %v", err)
	}
}
