package inventory

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/sensu-tlsd/sensu-tlsd/rotate/pki"
)

// sensuCert names one cert/key/CA triple of keys in a Sensu config and what
// the certificate there is for.
type sensuCert struct {
	cert, key, ca string
	profile       pki.Profile
	hostKeys      []string // URL keys whose hosts the certificate must cover
}

var backendCerts = []sensuCert{
	{"cert-file", "key-file", "trusted-ca-file", pki.Backend, []string{"api-url"}},
	{"dashboard-cert-file", "dashboard-key-file", "trusted-ca-file", pki.Server, nil},
	{"etcd-cert-file", "etcd-key-file", "etcd-trusted-ca-file", pki.EtcdPeer, []string{"etcd-advertise-client-urls"}},
	{"etcd-peer-cert-file", "etcd-peer-key-file", "etcd-peer-trusted-ca-file", pki.EtcdPeer, []string{"etcd-initial-advertise-peer-urls"}},
	{"agent-auth-cert-file", "agent-auth-key-file", "agent-auth-trusted-ca-file", pki.Backend, nil},
}

var agentCerts = []sensuCert{
	{"cert-file", "key-file", "trusted-ca-file", pki.Agent, nil},
}

// FromBackendConfig lists every certificate a Sensu backend.yml points at.
func FromBackendConfig(path string) ([]Source, error) {
	return fromSensu(path, "backend.yml", backendCerts)
}

// FromAgentConfig lists every certificate a Sensu agent.yml points at.
func FromAgentConfig(path string) ([]Source, error) { return fromSensu(path, "agent.yml", agentCerts) }

func fromSensu(path, origin string, specs []sensuCert) ([]Source, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
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
		out = append(out, Source{
			Name: origin + " " + spec.cert, Origin: origin, Profile: spec.profile, Hosts: hosts,
			CertFile: cert, KeyFile: str(spec.key), CAFile: str(spec.ca),
		})
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
	return out, nil
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
