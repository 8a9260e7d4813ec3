package sensu

import (
	"crypto/x509"
	"slices"

	"github.com/sensu-tlsd/sensu-tlsd/internal/pki"
)

// CertKeys are the settings that name one certificate's files in a Sensu
// config, with what Sensu does with that certificate. certKeys is the one
// table of them: the linter, the config writer, the inventory and the
// sensu-backend service trigger all read it through CertKeysOf.
type CertKeys struct {
	Cert, Key, CA string
	// Profile is what the certificate is used for.
	Profile pki.Profile
	// SharedWithEtcd, when set, replaces Profile for a file that is also
	// etcd-cert-file or etcd-peer-cert-file: the embedded etcd presents it
	// as a client too.
	SharedWithEtcd pki.Profile
	// ClientURLs are settings whose URLs clients are given: the
	// certificate must cover their hosts.
	ClientURLs []string
	// Listen are listen settings: a host there that is not a wildcard is
	// an address clients reach, so it must be covered too.
	Listen []string
	// Etcd marks the embedded etcd's own certificates (client and peer).
	Etcd bool
	// SourceChecked: the certificate is also presented as a client whose
	// source address is checked against it (etcd checks a peer's), so a
	// member talking over loopback needs 127.0.0.1 (or ::1) too.
	SourceChecked bool
	// ReadAtStart is true when the process reads the files only when it
	// starts, so new files need a restart; false when it reads them again
	// on every handshake or connection (the embedded etcd, sensu-agent).
	ReadAtStart bool
	// From is the managed certificate the files follow.
	From Supplier
	// CommercialOnly keys are read only by Sensu's commercial build.
	CommercialOnly bool
	// CNIsAgentName: the backend binds the certificate's CN to the Sensu
	// user named like the agent.
	CNIsAgentName bool
}

// Supplier names the sensu-tlsd setting whose managed certificate a
// CertKeys' files come from.
type Supplier int

const (
	// FromBackend is sensu.backend-certificate.
	FromBackend Supplier = iota + 1
	// FromEtcdPeer is sensu.etcd-peer-certificate, else
	// sensu.backend-certificate.
	FromEtcdPeer
	// FromAgent is sensu.agent-certificate for the certificate and key;
	// the CA is that certificate's, else sensu.backend-certificate's.
	FromAgent
)

// etcdPeerKeys are the embedded etcd's peer certificate settings, named
// on their own for Node.PeerHosts.
var etcdPeerKeys = CertKeys{Cert: "etcd-peer-cert-file", Key: "etcd-peer-key-file", CA: "etcd-peer-trusted-ca-file", Profile: pki.EtcdPeer,
	ClientURLs: []string{"etcd-initial-advertise-peer-urls"}, Listen: []string{"etcd-listen-peer-urls"}, Etcd: true, SourceChecked: true, From: FromEtcdPeer}

var certKeys = map[Role][]CertKeys{
	Backend: {
		{Cert: "cert-file", Key: "key-file", CA: "trusted-ca-file", Profile: pki.Server, SharedWithEtcd: pki.Backend,
			ClientURLs: []string{"api-url"}, Listen: []string{"api-listen-address", "agent-host"}, ReadAtStart: true, From: FromBackend},
		{Cert: "dashboard-cert-file", Key: "dashboard-key-file", CA: "trusted-ca-file", Profile: pki.Server,
			Listen: []string{"dashboard-host"}, ReadAtStart: true, From: FromBackend},
		{Cert: "etcd-cert-file", Key: "etcd-key-file", CA: "etcd-trusted-ca-file", Profile: pki.EtcdPeer,
			ClientURLs: []string{"etcd-advertise-client-urls"}, Listen: []string{"etcd-listen-client-urls"}, Etcd: true, From: FromBackend},
		etcdPeerKeys,
		{Cert: "agent-auth-cert-file", Key: "agent-auth-key-file", CA: "agent-auth-trusted-ca-file", Profile: pki.Server, SharedWithEtcd: pki.Backend,
			ReadAtStart: true, From: FromBackend, CommercialOnly: true},
	},
	Agent: {
		{Cert: "cert-file", Key: "key-file", CA: "trusted-ca-file", Profile: pki.Agent, From: FromAgent, CNIsAgentName: true},
	},
}

// CertKeysOf lists the certificates the role's process reads, in the
// order reports show them.
func CertKeysOf(r Role) []CertKeys { return certKeys[r] }

// Files are the three settings, in the order cert, key, CA.
func (k CertKeys) Files() []string { return []string{k.Cert, k.Key, k.CA} }

// ClientToo reports whether the certificate is also presented as a
// client, so it needs the clientAuth extended key usage.
func (k CertKeys) ClientToo() bool {
	return slices.Contains(k.Profile.ExtKeyUsages(), x509.ExtKeyUsageClientAuth)
}

// fileKeys are every setting of either role that names a TLS file, each
// once.
func fileKeys(r Role) []string {
	var out []string
	for _, k := range certKeys[r] {
		for _, f := range k.Files() {
			if !slices.Contains(out, f) {
				out = append(out, f)
			}
		}
	}
	return out
}

// ReadsAgain reports whether the role's process reads the file key names
// again on every handshake or connection, so a new file needs no restart.
// Any other setting naming a file (the TLS keys read at start, and keys
// such as jwt-private-key-file) is read at start only.
func ReadsAgain(r Role, key string) bool {
	for _, k := range certKeys[r] {
		if !k.ReadAtStart && slices.Contains(k.Files(), key) {
			return true
		}
	}
	return false
}
