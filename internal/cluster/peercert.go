package cluster

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/sensu-tlsd/sensu-tlsd/internal/pki"
)

// checkPeerURLs refuses a peer URL etcd would not parse, before its host
// is checked against a certificate.
func checkPeerURLs(b *Backend) error {
	for _, set := range []struct {
		key  string
		urls []string
	}{{"etcd-initial-advertise-peer-urls", b.AdvertisePeerURLs}, {"etcd-listen-peer-urls", b.ListenPeerURLs}} {
		for _, raw := range set.urls {
			if u, err := url.Parse(raw); err != nil || u.Hostname() == "" {
				return fmt.Errorf("%s: %s %q is not a URL: write it as http(s)://HOST:PORT", b.File, set.key, raw)
			}
		}
	}
	return nil
}

// CheckPeerCertificate checks that the certificate in certFile covers
// b.PeerHosts: a peer certificate missing one is refused by the other
// members once peer TLS is on.
func CheckPeerCertificate(b *Backend, certFile string) error {
	if err := checkPeerURLs(b); err != nil {
		return err
	}
	hosts := b.PeerHosts
	certs, err := pki.ReadCertificates(certFile)
	if err != nil {
		return fmt.Errorf("member %s (%s): etcd peer certificate: %v", b.Name, b.File, err)
	}
	leaf := certs[0]
	var missing []string
	for _, h := range hosts {
		if !pki.Covers(leaf, h) {
			missing = append(missing, h)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("member %s (%s): etcd peer certificate %s does not cover %s (SANs: %s); the other members check it against the peer URLs %s advertises and the address it connects from: reissue it with hosts %s",
		b.Name, b.File, certFile, strings.Join(missing, ", "), strings.Join(pki.SANs(leaf), ", "), b.Name, strings.Join(hosts, ", "))
}
