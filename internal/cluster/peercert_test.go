package cluster

import (
	"slices"
	"testing"
)

func TestPeerHostsCoverAdvertisedHostsAndTheSourceAddress(t *testing.T) {
	for _, tc := range []struct {
		name              string
		advertise, listen []string
		want              []string
	}{
		{"loopback name", []string{"https://localhost:2380"}, []string{"https://127.0.0.1:2380"}, []string{"localhost", "127.0.0.1"}},
		{"loopback address", []string{"https://127.0.0.1:2380"}, []string{"https://127.0.0.1:2380"}, []string{"127.0.0.1"}},
		{"IPv6 loopback", []string{"https://[::1]:2380"}, []string{"https://[::1]:2380"}, []string{"::1"}},
		{"every address", []string{"https://10.0.0.1:2380"}, []string{"https://0.0.0.0:2380"}, []string{"10.0.0.1"}},
		{"named host bound to its address", []string{"https://backend-1.example.com:2380"}, []string{"https://10.0.0.1:2380"}, []string{"backend-1.example.com", "10.0.0.1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := PeerHosts(&Backend{File: "backend.yml", AdvertisePeerURLs: tc.advertise, ListenPeerURLs: tc.listen})
			if err != nil || !slices.Equal(got, tc.want) {
				t.Errorf("PeerHosts = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
	if _, err := PeerHosts(&Backend{File: "backend.yml", AdvertisePeerURLs: []string{"10.0.0.1:2380"}}); err == nil {
		t.Error("a peer URL without a scheme was accepted")
	}
}
