package cluster

import (
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"

	"github.com/sensu-tlsd/sensu-tlsd/config/sensu"
	"github.com/sensu-tlsd/sensu-tlsd/internal/pki"
)

// PeerHosts are the hosts member b's peer certificate must cover: every
// host of its advertised peer URLs (the others dial those and check the
// name), and the address it connects to the others from (etcd checks a
// peer's client certificate against the source address of the
// connection): 127.0.0.1 (or ::1) when it talks over loopback, else the
// host its peer listener is bound to when that is a specific address.
func PeerHosts(b *Backend) ([]string, error) {
	var hosts []string
	add := func(h string) {
		if !slices.Contains(hosts, h) {
			hosts = append(hosts, h)
		}
	}
	hostOf := func(key, raw string) (string, error) {
		u, err := url.Parse(raw)
		if err != nil || u.Hostname() == "" {
			return "", fmt.Errorf("%s: %s %q is not a URL: write it as http(s)://HOST:PORT", b.File, key, raw)
		}
		return u.Hostname(), nil
	}
	for _, raw := range b.AdvertisePeerURLs {
		h, err := hostOf("etcd-initial-advertise-peer-urls", raw)
		if err != nil {
			return nil, err
		}
		add(h)
		if src := sensu.LoopbackSource(h); src != "" {
			add(src)
		}
	}
	for _, raw := range b.ListenPeerURLs {
		h, err := hostOf("etcd-listen-peer-urls", raw)
		if err != nil {
			return nil, err
		}
		if ip := net.ParseIP(h); ip != nil && ip.IsUnspecified() {
			continue // bound to every address: the advertised hosts are the source
		}
		if src := sensu.LoopbackSource(h); src != "" {
			add(src)
			continue
		}
		add(h)
	}
	return hosts, nil
}

// CheckPeerCertificate checks that the certificate in certFile covers
// PeerHosts(b): a peer certificate missing one is refused by the other
// members once peer TLS is on.
func CheckPeerCertificate(b *Backend, certFile string) error {
	hosts, err := PeerHosts(b)
	if err != nil {
		return err
	}
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
