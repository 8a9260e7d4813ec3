package inventory

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/sensu-tlsd/sensu-tlsd/internal/pki"
)

// sensuCert names one cert/key/CA triple of keys in a Sensu config and what
// the certificate there is for.
type sensuCert struct {
	cert, key, ca string
	profile       pki.Profile
	hostKeys      []string // URL keys whose hosts the certificate must cover
	// etcdProfile replaces profile when the same file is also an etcd
	// certificate, which the embedded etcd uses as a client too; alone,
	// the certificate only serves.
	etcdProfile pki.Profile
	// cnIsAgentName: the backend binds the CN to the Sensu user named
	// like the agent.
	cnIsAgentName bool
}

// etcdCertKeys are the backend.yml keys of etcd's own certificates.
var etcdCertKeys = []string{"etcd-cert-file", "etcd-peer-cert-file"}

var backendCerts = []sensuCert{
	{cert: "cert-file", key: "key-file", ca: "trusted-ca-file", profile: pki.Server, etcdProfile: pki.Backend, hostKeys: []string{"api-url"}},
	{cert: "dashboard-cert-file", key: "dashboard-key-file", ca: "trusted-ca-file", profile: pki.Server},
	{cert: "etcd-cert-file", key: "etcd-key-file", ca: "etcd-trusted-ca-file", profile: pki.EtcdPeer, hostKeys: []string{"etcd-advertise-client-urls"}},
	{cert: "etcd-peer-cert-file", key: "etcd-peer-key-file", ca: "etcd-peer-trusted-ca-file", profile: pki.EtcdPeer, hostKeys: []string{"etcd-initial-advertise-peer-urls"}},
	{cert: "agent-auth-cert-file", key: "agent-auth-key-file", ca: "agent-auth-trusted-ca-file", profile: pki.Server, etcdProfile: pki.Backend},
}

var agentCerts = []sensuCert{
	{cert: "cert-file", key: "key-file", ca: "trusted-ca-file", profile: pki.Agent, cnIsAgentName: true},
}

// FromBackendConfig lists every certificate a Sensu backend.yml points at.
func FromBackendConfig(path string) ([]Source, error) {
	return fromSensu(path, "backend.yml", backendCerts)
}

// FromAgentConfig lists every certificate a Sensu agent.yml points at.
func FromAgentConfig(path string) ([]Source, error) { return fromSensu(path, "agent.yml", agentCerts) }

func fromSensu(path, origin string, specs []sensuCert) ([]Source, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: file does not exist: check the path given to --%s-config", path, strings.TrimSuffix(origin, ".yml"))
	}
	if err != nil {
		return nil, err // names the file already
	}
	keys := map[string]any{}
	if err := yaml.Unmarshal(data, &keys); err != nil {
		return nil, fmt.Errorf("%s: not valid YAML: %v", path, err)
	}
	str := func(k string) string { s, _ := keys[k].(string); return s }
	var out []Source
	listedCA := map[string]bool{}
	for _, spec := range specs {
		cert := str(spec.cert)
		if cert == "" {
			continue
		}
		var hosts []string
		for _, hk := range spec.hostKeys {
			hosts = append(hosts, urlHosts(keys[hk])...)
		}
		s := Source{
			Name: origin + " " + spec.cert, Origin: origin, Profile: spec.profile, Hosts: hosts,
			CertFile: cert, KeyFile: str(spec.key), CAFile: str(spec.ca),
		}
		for _, k := range etcdCertKeys {
			if spec.etcdProfile != "" && str(k) != "" && filepath.Clean(str(k)) == filepath.Clean(cert) {
				s.Profile = spec.etcdProfile
			}
		}
		if spec.cnIsAgentName {
			s.CommonName, s.AgentNamespace = agentName(str("name")), cmp.Or(str("namespace"), "default")
		}
		out = append(out, s)
		listedCA[str(spec.ca)] = true
	}
	// A trust bundle with no certificate beside it (an agent that only
	// verifies the backend) is still worth a line: it can expire too.
	for _, spec := range specs {
		if ca := str(spec.ca); ca != "" && !listedCA[ca] {
			out = append(out, Source{Name: origin + " " + spec.ca, Origin: origin, CertFile: ca, IsCA: true})
			listedCA[ca] = true
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no TLS keys found (none of %s is set): if it should use TLS, a key may be misspelled, which Sensu ignores without a word (cert_file for cert-file): run sensu-tlsd lint %s", path, tlsKeyNames(specs), path)
	}
	return out, nil
}

// tlsKeyNames lists the keys fromSensu looks for, for the message that
// none was found.
func tlsKeyNames(specs []sensuCert) string {
	var names []string
	seen := map[string]bool{}
	for _, s := range specs {
		for _, k := range []string{s.cert, s.ca} {
			if !seen[k] {
				seen[k] = true
				names = append(names, k)
			}
		}
	}
	return strings.Join(names, ", ")
}

// agentIdentity is the name and namespace of the agent whose agent.yml is
// at path (the package's default when ""), as sensu-agent reads them; an
// unreadable file leaves sensu-agent's defaults (the hostname, default).
func agentIdentity(path string) (name, namespace string) {
	if path == "" {
		path = "/etc/sensu/agent.yml"
	}
	keys := map[string]any{}
	if data, err := os.ReadFile(path); err == nil {
		yaml.Unmarshal(data, &keys)
	}
	str := func(k string) string { s, _ := keys[k].(string); return s }
	return agentName(str("name")), cmp.Or(str("namespace"), "default")
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

// urlHosts returns the hosts of a URL or list of URLs, skipping wildcard
// listen addresses, which no certificate names.
func urlHosts(v any) []string {
	var raw []string
	switch t := v.(type) {
	case string:
		raw = strings.Fields(strings.ReplaceAll(t, ",", " "))
	case []any:
		for _, x := range t {
			if s, ok := x.(string); ok {
				raw = append(raw, s)
			}
		}
	}
	var hosts []string
	for _, r := range raw {
		u, err := url.Parse(r)
		if err != nil || u.Hostname() == "" {
			continue
		}
		h := u.Hostname()
		if ip := net.ParseIP(h); ip != nil && ip.IsUnspecified() {
			continue
		}
		hosts = append(hosts, h)
	}
	return hosts
}
