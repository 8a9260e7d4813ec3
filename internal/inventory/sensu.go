package inventory

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/sensu-tlsd/sensu-tlsd/config/sensu"
)

// FromBackendConfig lists every certificate sensu-backend reads: those its
// backend.yml points at, with the environment files its unit loads over it
// (missing ones are skipped), read as Sensu reads them.
func FromBackendConfig(path string, envFiles []string) ([]Source, error) {
	return fromSensu(sensu.Backend, path, envFiles, "backend.yml")
}

// FromAgentConfig lists every certificate sensu-agent reads, from its
// agent.yml and environment files.
func FromAgentConfig(path string, envFiles []string) ([]Source, error) {
	return fromSensu(sensu.Agent, path, envFiles, "agent.yml")
}

// fromSensu asks config/sensu's table of certificate keys which settings
// name certificates, and the node's files what they are set to.
func fromSensu(r sensu.Role, path string, envFiles []string, origin string) ([]Source, error) {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: file does not exist: check the path given to --%s-config", path, r)
	}
	node, err := sensu.ReadNode(r, path, envFiles)
	if err != nil {
		return nil, err // names the file already
	}
	str := func(k string) string {
		if k == "" {
			return ""
		}
		v, _ := node.Get(k)
		return v.Scalar
	}
	specs := sensu.CertKeysOf(r)
	var out []Source
	listedCA := map[string]bool{}
	for _, spec := range specs {
		cert := str(spec.Cert)
		if cert == "" {
			continue
		}
		var hosts []string
		for _, k := range spec.ClientURLs {
			if v, ok := node.Get(k); ok {
				hosts = append(hosts, urlHosts(v)...)
			}
		}
		s := Source{
			Name: origin + " " + spec.Cert, Origin: origin, Profile: spec.Profile, Hosts: hosts,
			CertFile: cert, KeyFile: str(spec.Key), CAFile: str(spec.CA),
		}
		if spec.SharedWithEtcd != "" && sharedWithEtcd(r, str, cert) {
			s.Profile = spec.SharedWithEtcd
		}
		if spec.CNIsAgentName {
			s.CommonName, s.AgentNamespace = agentName(str("name")), cmp.Or(str("namespace"), "default")
		}
		out = append(out, s)
		listedCA[str(spec.CA)] = true
	}
	// A trust bundle with no certificate beside it (an agent that only
	// verifies the backend) is still worth a line: it can expire too.
	for _, spec := range specs {
		if ca := str(spec.CA); ca != "" && !listedCA[ca] {
			out = append(out, Source{Name: origin + " " + spec.CA, Origin: origin, CertFile: ca, IsCA: true})
			listedCA[ca] = true
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no TLS keys found (none of %s is set): if it should use TLS, a key may be misspelled, which Sensu ignores without a word (cert_file for cert-file): run sensu-tlsd lint %s", path, tlsKeyNames(specs), path)
	}
	return out, nil
}

// sharedWithEtcd reports whether cert is also one of the embedded etcd's
// own certificates, which etcd presents as a client too.
func sharedWithEtcd(r sensu.Role, str func(string) string, cert string) bool {
	for _, k := range sensu.CertKeysOf(r) {
		if k.Etcd && str(k.Cert) != "" && filepath.Clean(str(k.Cert)) == filepath.Clean(cert) {
			return true
		}
	}
	return false
}

// tlsKeyNames lists the keys fromSensu looks for, for the message that
// none was found.
func tlsKeyNames(specs []sensu.CertKeys) string {
	var names []string
	seen := map[string]bool{}
	for _, s := range specs {
		for _, k := range []string{s.Cert, s.CA} {
			if !seen[k] {
				seen[k] = true
				names = append(names, k)
			}
		}
	}
	return strings.Join(names, ", ")
}

// agentIdentity is the name and namespace of the agent whose agent.yml is
// at path (the package's default when ""), with its environment files, as
// sensu-agent reads them; an unreadable file leaves sensu-agent's defaults
// (the hostname, default).
func agentIdentity(path string, envFiles []string) (name, namespace string) {
	if path == "" {
		path = sensu.DefaultAgentConfig
	}
	if n, err := sensu.ReadNode(sensu.Agent, path, envFiles); err == nil {
		if id, err := n.AgentIdentity(); err == nil {
			return id.Name, id.Namespace
		}
	}
	return agentName(""), sensu.DefaultAgentNamespace
}

// agentName is the name a sensu-agent runs as: agent.yml's name, else the
// hostname, as sensu-agent defaults it.
func agentName(configured string) string {
	if configured != "" {
		return configured
	}
	host, err := os.Hostname()
	if err != nil {
		return ""
	}
	return host
}

// urlHosts returns the hosts of the URLs a setting holds, skipping
// wildcard listen addresses, which no certificate names.
func urlHosts(v sensu.Value) []string {
	var hosts []string
	for _, u := range sensu.URLs(v) {
		h := sensu.URLHost(u)
		if ip := net.ParseIP(h); h == "" || ip != nil && ip.IsUnspecified() {
			continue
		}
		hosts = append(hosts, h)
	}
	return hosts
}
