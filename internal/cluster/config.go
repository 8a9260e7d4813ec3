package cluster

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"

	"github.com/sensu-tlsd/sensu-tlsd/config/sensu"
)

// Config is how to reach a cluster's etcd.
type Config struct {
	// Endpoints are client URLs (http:// or https://).
	Endpoints []string
	// CertFile, KeyFile and CAFile are the client certificate and the CA
	// the members' client certificates chain to; empty for plaintext.
	CertFile, KeyFile, CAFile string
	// Username and Password authenticate to an etcd with auth enabled
	// (etcd-client-username, etcd-client-password); empty when it is not.
	Username, Password string
	// Source names where the settings came from, for error messages.
	Source string
}

// Sensu's defaults for the etcd keys read here (sensu-backend 6.x).
const (
	defaultAdvertiseClientURL = "http://localhost:2379"
	defaultAdvertisePeerURL   = "http://127.0.0.1:2380"
	defaultListenPeerURL      = "http://127.0.0.1:2380"
	defaultMemberName         = "default"
)

// Backend is what a member's backend.yml says about its etcd.
type Backend struct {
	File string
	// Name is etcd-name: the member's name in the cluster.
	Name string
	// ClientURLs are etcd-client-urls when set (an external etcd), else
	// etcd-advertise-client-urls.
	ClientURLs []string
	// AdvertisePeerURLs are etcd-initial-advertise-peer-urls.
	AdvertisePeerURLs []string
	// ListenPeerURLs are etcd-listen-peer-urls.
	ListenPeerURLs []string
	// PeerHosts are the hosts its peer certificate must cover
	// (sensu.Node.PeerHosts).
	PeerHosts []string
	// InitialCluster are the NAME=URL entries of etcd-initial-cluster.
	InitialCluster []string
	// Client is the etcd client certificate (etcd-cert-file...).
	Client sensu.CertPaths
	// Peer is the peer certificate (etcd-peer-cert-file...).
	Peer sensu.CertPaths
	// Username and Password are etcd-client-username and
	// etcd-client-password.
	Username, Password string
}

// ReadBackend reads the etcd settings of backend.yml at path and of the
// environment files sensu-backend loads (envFiles), which override it.
func ReadBackend(path string, envFiles []string) (*Backend, error) {
	n, err := sensu.ReadNode(sensu.Backend, path, envFiles)
	if err != nil {
		return nil, err
	}
	return BackendOf(n, path), nil
}

// BackendOf is what a backend node's files say about its etcd, with an
// environment file's setting over backend.yml's as sensu-backend reads
// them; file names the backend.yml for messages.
func BackendOf(n *sensu.Node, file string) *Backend {
	str := func(key, def string) string {
		if v, ok := n.Get(key); ok && v.Scalar != "" {
			return v.Scalar
		}
		return def
	}
	urls := func(key, def string) []string {
		v, ok := n.Get(key)
		if !ok {
			if def == "" {
				return nil
			}
			return []string{def}
		}
		var out []string
		for _, it := range sensu.SensuItems(v) {
			for _, u := range strings.Split(it, ",") {
				if u = strings.TrimSpace(u); u != "" {
					out = append(out, u)
				}
			}
		}
		return out
	}
	b := &Backend{
		File:              file,
		Name:              str("etcd-name", defaultMemberName),
		ClientURLs:        urls("etcd-client-urls", ""),
		AdvertisePeerURLs: urls("etcd-initial-advertise-peer-urls", defaultAdvertisePeerURL),
		ListenPeerURLs:    urls("etcd-listen-peer-urls", defaultListenPeerURL),
		PeerHosts:         n.PeerHosts(),
		InitialCluster:    urls("etcd-initial-cluster", defaultMemberName+"="+defaultAdvertisePeerURL),
		Client:            sensu.CertPaths{CertFile: str("etcd-cert-file", ""), KeyFile: str("etcd-key-file", ""), CAFile: str("etcd-trusted-ca-file", "")},
		Peer:              sensu.CertPaths{CertFile: str("etcd-peer-cert-file", ""), KeyFile: str("etcd-peer-key-file", ""), CAFile: str("etcd-peer-trusted-ca-file", "")},
		Username:          str("etcd-client-username", ""),
		Password:          str("etcd-client-password", ""),
	}
	if len(b.ClientURLs) == 0 {
		b.ClientURLs = urls("etcd-advertise-client-urls", defaultAdvertiseClientURL)
	}
	return b
}

// Clustered reports whether the backend's etcd has peers.
func (b *Backend) Clustered() bool { return len(b.InitialCluster) > 1 }

// Config is how this member's own backend reaches the cluster.
func (b *Backend) Config() Config {
	return Config{Endpoints: b.ClientURLs, CertFile: b.Client.CertFile, KeyFile: b.Client.KeyFile, CAFile: b.Client.CAFile,
		Username: b.Username, Password: b.Password, Source: b.File}
}

// tlsConfig is the client TLS for c, nil when every endpoint is http and
// no certificate is named. With one, http endpoints still dial plaintext:
// a cluster halfway through its cutover has members of both.
func (c Config) tlsConfig() (*tls.Config, error) {
	secure := c.CertFile != "" || c.CAFile != ""
	for _, e := range c.Endpoints {
		if strings.HasPrefix(e, "https://") {
			secure = true
		}
	}
	if !secure {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("%s: etcd-trusted-ca-file: %v", c.Source, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: etcd-trusted-ca-file %s holds no PEM certificate: point it at the CA bundle the etcd members' certificates chain to", c.Source, c.CAFile)
		}
		cfg.RootCAs = pool
	}
	if c.CertFile != "" {
		if c.KeyFile == "" {
			return nil, fmt.Errorf("%s: etcd-cert-file is set but etcd-key-file is not: name the client certificate's key", c.Source)
		}
		pair, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("%s: etcd-cert-file %s / etcd-key-file %s: %v", c.Source, c.CertFile, c.KeyFile, err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}
