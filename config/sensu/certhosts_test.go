package sensu

import (
	"slices"
	"testing"
)

// The etcd peer certificate covers the loopback address a member connects
// from, IPv6 too; the API certificate skips wildcard listeners and takes
// Sensu's defaults for keys no file sets.
func TestCertHostsAddTheLoopbackSourceOfPeers(t *testing.T) {
	d, err := Parse("backend.yml", []byte(`etcd-initial-advertise-peer-urls: "https://[::1]:2380"
etcd-listen-peer-urls: "https://[::]:2380"
api-listen-address: "[::]:8080"
`))
	if err != nil {
		t.Fatal(err)
	}
	n := NodeOf(Backend, d)
	for _, tc := range []struct {
		cert string
		want []string
	}{
		{"etcd-peer-cert-file", []string{"::1"}},
		{"cert-file", []string{"localhost"}}, // api-url's default; agent-host and the API listen on every address
	} {
		for _, k := range CertKeysOf(Backend) {
			if k.Cert == tc.cert {
				if got := n.CertHosts(k); !slices.Equal(got, tc.want) {
					t.Errorf("%s: hosts %v, want %v", tc.cert, got, tc.want)
				}
			}
		}
	}
}

// PeerHosts: every advertised host (the others dial it and check the
// name) and the address the member connects from: its loopback address
// over loopback, else the address its listener is bound to.
func TestPeerHostsCoverAdvertisedHostsAndTheSourceAddress(t *testing.T) {
	for _, tc := range []struct {
		name              string
		advertise, listen string
		want              []string
	}{
		{"loopback name", "https://localhost:2380", "https://127.0.0.1:2380", []string{"localhost", "127.0.0.1"}},
		{"loopback address", "https://127.0.0.1:2380", "https://127.0.0.1:2380", []string{"127.0.0.1"}},
		{"IPv6 loopback", "https://[::1]:2380", "https://[::1]:2380", []string{"::1"}},
		{"every address", "https://10.0.0.1:2380", "https://0.0.0.0:2380", []string{"10.0.0.1"}},
		{"named host bound to its address", "https://backend-1.example.com:2380", "https://10.0.0.1:2380", []string{"backend-1.example.com", "10.0.0.1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Parse("backend.yml", []byte("etcd-initial-advertise-peer-urls: "+tc.advertise+"\netcd-listen-peer-urls: "+tc.listen+"\n"))
			if err != nil {
				t.Fatal(err)
			}
			if got := NodeOf(Backend, d).PeerHosts(); !slices.Equal(got, tc.want) {
				t.Errorf("PeerHosts = %v, want %v", got, tc.want)
			}
		})
	}
}
