package sensu

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"slices"
	"strings"

	"github.com/sensu-tlsd/sensu-tlsd/config"
)

// CertHosts are the hosts a certificate named by k must cover on node n:
// the hosts of k's client URL settings and of its listen settings that are
// not wildcards (Sensu's defaults where no file sets them), and, for a
// certificate whose source address is checked (SourceChecked), the
// loopback address a member connects from when one of those hosts is on
// loopback. The linter checks a certificate against the same hosts.
func (n *Node) CertHosts(k CertKeys) []string { return certHosts(n.Role, n.Get, k) }

// PeerHosts are the hosts backend node n's etcd peer certificate must
// cover: the other members dial its advertised peer URLs and check the
// name, and check the address it connects from.
func (n *Node) PeerHosts() []string { return n.CertHosts(etcdPeerKeys) }

// certHosts is CertHosts over any reader of role's settings: a node (its
// files merged as Sensu merges them) or the one file the linter reads.
func certHosts(role Role, get func(key string) (Value, bool), k CertKeys) []string {
	var hosts []string
	add := func(h string) {
		if h != "" && !isWildcard(h) && !slices.Contains(hosts, h) {
			hosts = append(hosts, h)
		}
	}
	for _, key := range append(slices.Clone(k.ClientURLs), k.Listen...) {
		v, ok := get(key)
		if !ok {
			v, ok = Default(role, key)
		}
		if !ok {
			continue
		}
		for _, u := range URLs(v) {
			h := URLHost(u)
			add(h)
			if k.SourceChecked {
				add(LoopbackSource(h))
			}
		}
	}
	return hosts
}

// LoopbackSource is the address a connection over loopback comes from
// when host is a loopback name or address, "" otherwise: etcd checks a
// peer's certificate against it.
func LoopbackSource(host string) string {
	if host == "localhost" {
		return "127.0.0.1"
	}
	ip := net.ParseIP(host)
	switch {
	case ip == nil || !ip.IsLoopback():
		return ""
	case ip.To4() == nil:
		return "::1"
	}
	return "127.0.0.1"
}

// CertificateHosts are the hosts managed certificate c must cover, and
// where they came from: its own hosts when it sets any; else, when the
// config ties it to Sensu (sensu.backend-certificate,
// sensu.etcd-peer-certificate), every host the Sensu certificates that
// follow it must cover, read from backend.yml and its environment files as
// sensu-backend reads them, with the files they came from. No defaults
// for an ACME certificate (its order names the hosts the server
// validates, which loopback names never pass), for a certificate that is
// not Sensu's, or when backend.yml does not exist (Sensu is not installed
// yet).
func CertificateHosts(s config.Sensu, c config.Certificate) (hosts []string, from string, err error) {
	if len(c.Hosts) > 0 || c.Issuer.Type == config.IssuerACME || c.Name == "" {
		return c.Hosts, "", nil
	}
	var supplies []Supplier
	if c.Name == s.BackendCertificate {
		supplies = append(supplies, FromBackend)
	}
	if c.Name == s.EtcdPeerCertificate || (c.Name == s.BackendCertificate && s.EtcdPeerCertificate == "") {
		supplies = append(supplies, FromEtcdPeer)
	}
	if len(supplies) == 0 {
		return nil, "", nil
	}
	file := s.BackendConfig
	if file == "" {
		file = DefaultBackendConfig
	}
	if _, err := os.Stat(file); errors.Is(err, fs.ErrNotExist) {
		return nil, "", nil
	}
	n, err := ReadNode(Backend, file, EnvFilesOf(Backend, s.BackendEnvFiles))
	if err != nil {
		return nil, "", fmt.Errorf("%w (fix: correct the file, or set hosts on the certificate)", err)
	}
	for _, k := range certKeys[Backend] {
		if !slices.Contains(supplies, k.From) || (k.CommercialOnly && !s.Commercial) {
			continue
		}
		for _, h := range n.CertHosts(k) {
			if !slices.Contains(hosts, h) {
				hosts = append(hosts, h)
			}
		}
	}
	return hosts, strings.Join(n.Files, ", "), nil
}
