package migrate

import (
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/sensu-tlsd/sensu-tlsd/config"
	"github.com/sensu-tlsd/sensu-tlsd/config/sensu"
	"github.com/sensu-tlsd/sensu-tlsd/internal/pki"
)

// On the open-source build, agent mTLS (sensu.agent-mtls without
// sensu.commercial) is done by sensu-tlsd at both ends, since the backend
// reads no agent-auth-* and an agent with cert-file stops sending the
// password that backend needs:
//
//   - backend node: the agent port moves to loopback again, and a terminate
//     listener on the public agent port requires the agents' certificates
//     and binds each to its name (agent-identity cn), speaking TLS to the
//     backend (target-tls), which keeps its Basic auth;
//   - agent node: sensu-agent connects with ws:// to sensu-tlsd on
//     AgentUplink, which carries it to the backends over TLS presenting the
//     agent's certificate. The password still goes, inside that TLS.
//
// Both listeners go to EnforceDropInPath; a rollback of phase 4 removes it.

// AgentUplink is where sensu-agent connects on the open-source build's
// phase 4: this node's sensu-tlsd, which presents the agent certificate.
const AgentUplink = "127.0.0.1:8091"

// EnforceDropInPath is the file phase 4 writes its listeners to on the
// open-source build with agent mTLS.
func EnforceDropInPath(stateDir string) string {
	return filepath.Join(stateDir, "listeners.d", "migrate-enforce.yml")
}

const enforceDropInHeader = "# Written by `sensu-tlsd migrate apply --phase 4` (agent mTLS on the open-source build).\n" +
	"# Removed by a rollback of phase 4; do not edit.\n"

// bindsAgents: agent mTLS through sensu-tlsd, on the open-source build.
func (n *Node) bindsAgents() bool { return n.AgentMTLS && !n.Commercial }

// agentClientCA verifies the agents' certificates.
func (n *Node) agentClientCA() string {
	if n.Agent.CAFile != "" {
		return n.Agent.CAFile
	}
	return n.Backend.CAFile
}

// applyAgentBinding is phase 4's part for bindsAgents.
func applyAgentBinding(w *workspace) error {
	var ls []config.Listener
	if w.node.IsBackend() {
		l, err := bindAgentPort(w)
		if err != nil {
			return err
		}
		ls = append(ls, l)
	}
	if w.node.IsAgent() {
		l, err := uplinkAgent(w)
		if err != nil {
			return err
		}
		ls = append(ls, l)
	}
	return w.setDropInAt(EnforceDropInPath(w.node.StateDir), enforceDropInHeader, ls)
}

// bindAgentPort moves the backend's agent listener to loopback and
// returns the binding listener that takes its public address.
func bindAgentPort(w *workspace) (config.Listener, error) {
	public := map[string]string{}
	for _, k := range []bridgeKey{agentHost, agentPort} {
		v, err := w.effective(k)
		if err != nil {
			return config.Listener{}, err
		}
		if orig, ok := w.state.publicValue(k.key); ok {
			v = orig
		}
		public[k.key] = v
	}
	// The backend's agent port goes where the bridge put it (its loopback
	// ports are remembered until phase 1 is rolled back).
	loop := strconv.Itoa(w.state.bridgePorts(w.node).Agent)
	serverName, err := loopbackName(w.node.Backend.CertFile)
	if err != nil {
		return config.Listener{}, err
	}
	err = w.backendSettings(func(_ string, s sensu.Settings) error {
		port := sensu.Str(loop)
		port.Tag = "!!int"
		s.Set(agentHost.key, sensu.Str("127.0.0.1"))
		s.Set(agentPort.key, port)
		return nil
	})
	return config.Listener{Name: "sensu-agent", Mode: "terminate",
		Listen:  net.JoinHostPort(trimBrackets(public[agentHost.key]), public[agentPort.key]),
		Targets: []string{net.JoinHostPort("127.0.0.1", loop)}, Certificate: w.node.Backend.Name,
		ClientCA: w.node.agentClientCA(), AgentIdentity: "cn", TargetTLS: true, ServerName: serverName,
		AgentHeaders: true}, err
}

// loopbackName is the name the proxy verifies on the backend's certificate
// at 127.0.0.1: none when the certificate covers that address.
func loopbackName(certFile string) (string, error) {
	certs, err := pki.ReadCertificates(certFile)
	if err != nil {
		return "", err
	}
	leaf := certs[0]
	if leaf.VerifyHostname("127.0.0.1") == nil {
		return "", nil
	}
	if len(leaf.DNSNames) == 0 {
		return "", fmt.Errorf("backend certificate %s covers neither 127.0.0.1 nor a DNS name, so the agent listener cannot verify the backend on its loopback port; add 127.0.0.1 to its hosts", certFile)
	}
	if slices.Contains(leaf.DNSNames, "localhost") {
		return "localhost", nil
	}
	return leaf.DNSNames[0], nil
}

// uplinkAgent points sensu-agent at AgentUplink and returns the originate
// listener that carries it to the backends it named.
func uplinkAgent(w *workspace) (config.Listener, error) {
	var targets []string
	err := w.agentSettings(func(path string, s sensu.Settings) error {
		w.state.rememberOriginal(path, "backend-url", s)
		v, _ := sensu.Default(sensu.Agent, "backend-url")
		switch orig, remembered := w.state.Original[path]["backend-url"]; {
		case remembered && orig != nil:
			v = *orig
		case path != w.node.Files.Agent:
			return nil // an env file without backend-url
		}
		var bad error
		sensu.MapURLs(v, func(u string) string {
			hp, err := backendHostPort(u)
			if err != nil && bad == nil {
				bad = fmt.Errorf("%s: backend-url: %w", path, err)
			}
			if err == nil && !slices.Contains(targets, hp) {
				targets = append(targets, hp)
			}
			return u
		})
		if bad != nil {
			return bad
		}
		s.Set("backend-url", sensu.List("ws://"+AgentUplink))
		// The hop to sensu-tlsd is plaintext on loopback; the CA is the
		// uplink's (target-ca) now.
		if d, ok := s.(deleter); ok {
			d.Delete("trusted-ca-file")
		}
		return nil
	})
	return config.Listener{Name: "sensu-agent-uplink", Mode: "originate", Listen: AgentUplink, Targets: targets,
		Certificate: w.node.Agent.Name, TargetCA: w.node.agentCA()}, err
}

// backendHostPort is the host:port of an agent's backend URL, with Sensu's
// default port 8081.
func backendHostPort(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Hostname() == "" {
		return "", fmt.Errorf("%q is not a ws:// or wss:// URL", raw)
	}
	port := u.Port()
	if port == "" {
		port = "8081"
	}
	return net.JoinHostPort(u.Hostname(), port), nil
}
