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
