package pki

import (
	"crypto/x509"
	"fmt"
	"sort"
	"strings"
)

// Profile is a certificate's role in a Sensu deployment. It fixes the
// extended key usages, following the Sensu guide's cfssl recipe.
type Profile string

const (
	// Backend serves the API (8080) and the agent websocket (8081). It also
	// carries clientAuth because the guide reuses it as the etcd cert.
	Backend Profile = "backend"
	// EtcdPeer secures etcd peer and client traffic; the embedded etcd also
	// dials its own client URL with it, so it needs clientAuth too.
	EtcdPeer Profile = "etcd-peer"
	// EtcdClient authenticates a client to etcd; it serves nothing.
	EtcdClient Profile = "etcd-client"
	// Agent authenticates a sensu-agent (commercial agent mTLS); its CN
	// names the Sensu user it is bound to.
	Agent Profile = "agent"
	// Server and Client are the generic roles.
	Server Profile = "server"
	Client Profile = "client"
)

var profileEKUs = map[Profile][]x509.ExtKeyUsage{
	Backend:    {x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	EtcdPeer:   {x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	EtcdClient: {x509.ExtKeyUsageClientAuth},
	Agent:      {x509.ExtKeyUsageClientAuth},
	Server:     {x509.ExtKeyUsageServerAuth},
	Client:     {x509.ExtKeyUsageClientAuth},
}

// Profiles lists every known profile, sorted.
func Profiles() []Profile {
	ps := make([]Profile, 0, len(profileEKUs))
	for p := range profileEKUs {
		ps = append(ps, p)
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
	return ps
}

// ParseProfile checks name against the known profiles.
func ParseProfile(name string) (Profile, error) {
	p := Profile(name)
	if _, ok := profileEKUs[p]; ok {
		return p, nil
	}
	names := make([]string, 0, len(profileEKUs))
	for _, p := range Profiles() {
		names = append(names, string(p))
	}
	return "", fmt.Errorf("unknown profile %q: use one of %s", name, strings.Join(names, ", "))
}

// ExtKeyUsages are the extended key usages a certificate of this profile
// must carry.
func (p Profile) ExtKeyUsages() []x509.ExtKeyUsage { return profileEKUs[p] }

// Serves reports whether the profile's certificate is presented by a server
// and so needs its hosts as SANs.
func (p Profile) Serves() bool {
	for _, u := range profileEKUs[p] {
		if u == x509.ExtKeyUsageServerAuth {
			return true
		}
	}
	return false
}

// ekuName is the name openssl prints for an extended key usage.
func ekuName(u x509.ExtKeyUsage) string {
	switch u {
	case x509.ExtKeyUsageServerAuth:
		return "serverAuth"
	case x509.ExtKeyUsageClientAuth:
		return "clientAuth"
	case x509.ExtKeyUsageAny:
		return "any"
	case x509.ExtKeyUsageCodeSigning:
		return "codeSigning"
	case x509.ExtKeyUsageEmailProtection:
		return "emailProtection"
	case x509.ExtKeyUsageOCSPSigning:
		return "OCSPSigning"
	case x509.ExtKeyUsageTimeStamping:
		return "timeStamping"
	}
	return fmt.Sprintf("eku(%d)", u)
}

// ExtKeyUsageNames lists a certificate's extended key usages by name.
func ExtKeyUsageNames(c *x509.Certificate) []string {
	names := make([]string, 0, len(c.ExtKeyUsage))
	for _, u := range c.ExtKeyUsage {
		names = append(names, ekuName(u))
	}
	return names
}
