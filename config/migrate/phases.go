package migrate

import (
	"bytes"
	"fmt"
	"net"

	"go.yaml.in/yaml/v3"

	"github.com/sensu-tlsd/sensu-tlsd/config"
	"github.com/sensu-tlsd/sensu-tlsd/config/sensu"
)

// step is one phase: what it does to the files, what it needs, and on
// which nodes it does anything.
type step struct {
	summary func(n *Node) string
	apply   func(w *workspace) error
	needs   func(n *Node) []Need
	// skip says why the phase changes nothing on n ("" when it applies):
	// a phase that does not apply is passed over, never required.
	skip  func(n *Node) string
	notes func(n *Node) []string
}

func backendOnly(n *Node) string {
	if !n.IsBackend() {
		return "no backend on this node"
	}
	return ""
}

var steps = map[Phase]step{
	Bridge: {
		summary: func(n *Node) string {
			s := "backend listeners move to loopback; sensu-tlsd's proxy serves TLS (and plaintext while allowed) on the public ports"
			if n.clusterMember() {
				s += "; as a cluster member, etcd gets the peer trio (etcd-peer-cert-file, -key-file, -trusted-ca-file) while its peer URLs stay http, so it can dial the members that move to https peers in their phase 3"
			}
			return s
		},
		apply: applyBridge,
		skip:  backendOnly,
		needs: func(n *Node) []Need {
			needs := []Need{n.certNeed(n.Backend, "backend-certificate", "served by the bridge on the backend's public ports", "backend")}
			if n.clusterMember() {
				needs = append(append(needs, n.certNeed(n.peer(), n.peerKey(), "etcd peer trio, which this member dials https peers with", "etcd-peer")),
					n.peerCoverageNeeds()...)
			}
			return needs
		},
	},
	Agents: {
		summary: fixed("agents connect with wss:// and verify the backends against the CA"),
		apply:   applyAgents,
		skip: func(n *Node) string {
			if !n.IsAgent() {
				return "no agent on this node"
			}
			return ""
		},
		needs: func(n *Node) []Need {
			return []Need{n.caNeed(n.agentCA(), "agent.yml trusted-ca-file")}
		},
		notes: func(*Node) []string {
			return []string{"every agent of the fleet needs this phase before a backend's phase 3, which ends ws://"}
		},
	},
	Native: {
		summary: fixed("the backend serves TLS itself on the API and agent ports (no plaintext), etcd serves https and requires client certificates on its client and peer ports, and the bridge ends"),
		apply:   applyNative,
		skip:    backendOnly,
		needs: func(n *Node) []Need {
			return append([]Need{
				n.certNeed(n.Backend, "backend-certificate", "cert-file/key-file and the etcd client certificate (needs serverAuth and clientAuth)", "backend"),
				n.certNeed(n.peer(), n.peerKey(), "etcd peer trio", "etcd-peer"),
			}, n.peerCoverageNeeds()...)
		},
		notes: func(*Node) []string {
			return []string{"an existing etcd member keeps its stored http:// peer URL until it is updated: on a cluster, apply (and rollback) move this member's stored peer URLs while its backend is stopped, one member at a time under the cluster's restart lock; with --print-only run `etcdctl member update ID --peer-urls=https://HOST:2380` between stopping and starting it"}
		},
	},
	Enforce: {
		summary: func(n *Node) string { return enforcementOf(n).summary },
		apply:   applyEnforce,
		skip:    func(n *Node) string { return enforcementOf(n).skip },
		needs: func(n *Node) []Need {
			var needs []Need
			switch {
			case n.IsAgent() && n.bindsAgents():
				needs = append(needs, n.certNeed(n.Agent, "agent-certificate", "sensu-tlsd to present on "+AgentUplink+" for sensu-agent (agent mTLS, open-source build)", "agent"))
			case n.IsAgent() && n.AgentMTLS:
				needs = append(needs, n.certNeed(n.Agent, "agent-certificate", "agent.yml cert-file/key-file (agent mTLS)", "agent"))
			}
			if n.IsBackend() && n.bindsAgents() {
				needs = append(needs, n.caNeed(n.agentClientCA(), "client-ca of the agent listener that binds each agent to its certificate"))
			}
			return needs
		},
	},
}

func fixed(s string) func(*Node) string { return func(*Node) string { return s } }

// enforcement is what phase 4 does on a node. It is the one place that
// says so, per build: plan, apply, status and the README follow it.
type enforcement struct {
	summary string
	skip    string // why phase 4 changes nothing here; "" when it does
	// agentAuth: the commercial backend authenticates agents by certificate.
	agentAuth bool
	// agentCert: the agent presents its certificate.
	agentCert bool
}

// enforcementOf is phase 4 on n. Phase 3 already ends plaintext and makes
// etcd require client certificates (Sensu's etcd-trusted-ca-file serves
// both ends), so what is left is agent certificate authentication, which
// only the commercial backend reads.
func enforcementOf(n *Node) enforcement {
	e := enforcement{
		agentAuth: n.IsBackend() && n.Commercial && n.AgentMTLS,
		agentCert: n.IsAgent() && n.AgentMTLS,
	}
	switch {
	case n.bindsAgents():
		e.summary = "agents are bound to their certificates at sensu-tlsd (open-source build): the backend's agent port moves to loopback behind a listener that refuses agents without a certificate naming them (agent-identity cn), and each agent node's sensu-tlsd presents the agent's certificate on " + AgentUplink
	case e.agentAuth || e.agentCert:
		e.summary = "agents authenticate by certificate (agent mTLS): the commercial backend's agent-auth-* keys, each agent's cert-file/key-file"
	case !n.Commercial:
		e.summary = "no effect on the open-source build without agent mTLS: phase 3 already refuses plaintext and makes etcd require client certificates; with sensu.agent-mtls, sensu-tlsd binds agents to their certificates"
		e.skip = "no effect on the open-source build without agent certificates (sensu.agent-mtls: false)"
	default:
		e.summary = "no effect without agent mTLS: phase 3 already refuses plaintext and makes etcd require client certificates"
		e.skip = "no effect here without agent certificates (sensu.agent-mtls: false)"
	}
	return e
}

// Applies reports whether phase p changes anything on n, and if not why.
func Applies(n *Node, p Phase) (bool, string) {
	s, ok := steps[p]
	if !ok {
		return false, "no such phase"
	}
	why := s.skip(n)
	return why == "", why
}

// Phases are the phases that do something on n, in order: a backend-only
// node has 1 (bridge) and 3 (native), an agent-only node has 2 (agents),
// and 4 (enforce) where agent certificates are in use.
func Phases(n *Node) []Phase {
	var out []Phase
	for p := Bridge; p <= Last; p++ {
		if ok, _ := Applies(n, p); ok {
			out = append(out, p)
		}
	}
	return out
}

// nextPhase is the first phase after p that applies to n, or Plaintext
// when none is left.
func nextPhase(n *Node, p Phase) Phase {
	for q := p + 1; q <= Last; q++ {
		if ok, _ := Applies(n, q); ok {
			return q
		}
	}
	return Plaintext
}

// prevPhase is the last phase before p that applies to n, or Plaintext.
func prevPhase(n *Node, p Phase) Phase {
	for q := p - 1; q > Plaintext; q-- {
		if ok, _ := Applies(n, q); ok {
			return q
		}
	}
	return Plaintext
}

// backendSettings yields backend.yml and the backend env files.
func (w *workspace) backendSettings(f func(path string, s sensu.Settings) error) error {
	if !w.node.IsBackend() {
		return nil
	}
	return w.each(sensu.Backend, w.node.Files.Backend, w.node.Files.BackendEnv, f)
}

func (w *workspace) agentSettings(f func(path string, s sensu.Settings) error) error {
	if !w.node.IsAgent() {
		return nil
	}
	return w.each(sensu.Agent, w.node.Files.Agent, w.node.Files.AgentEnv, f)
}

// effective reads a backend setting as Sensu does (config/sensu's Node:
// env over file over default).
func (w *workspace) effective(k bridgeKey) (string, error) {
	var layers []sensu.Settings
	err := w.backendSettings(func(_ string, s sensu.Settings) error {
		layers = append(layers, s)
		return nil
	})
	return sensu.NodeOf(sensu.Backend, layers...).Str(k.key), err
}

// hasDashboard: only the commercial build serves the web UI, so only
// there is a dashboard port bridged or given a certificate.
func (w *workspace) hasDashboard() bool { return w.node.Commercial }

func applyBridge(w *workspace) error {
	if !w.node.IsBackend() {
		return nil
	}
	dashboard := w.hasDashboard()
	keys := bridgeKeys[:3]
	if dashboard {
		keys = bridgeKeys
	}
	// The public addresses come from the original settings when the bridge
	// is re-applied, so a repeat does not proxy loopback to loopback.
	public := map[string]string{}
	for _, k := range keys {
		v, err := w.effective(k)
		if err != nil {
			return err
		}
		if orig, ok := w.state.publicValue(k.key); ok {
			v = orig
		}
		public[k.key] = v
	}
	if r := w.node.RefusePlaintext; r != nil {
		w.state.RefusePlaintext = *r
	}
	ports := w.state.bridgePorts(w.node)
	ls, err := w.node.listenersFor(public, ports, dashboard, w.state.RefusePlaintext)
	if err != nil {
		return fmt.Errorf("%s: %w", w.node.Files.Backend, err)
	}
	if w.state.Phase < Bridge || ports != w.state.bridgePorts(&Node{}) {
		// New loopback ports: the backend is not on them yet.
		if err := ports.free(dashboard); err != nil {
			return err
		}
	}
	w.state.BridgePorts = &ports
	loop := map[string]string{
		apiListen.key: ls[0].Targets[0],
		agentHost.key: "127.0.0.1",
		agentPort.key: portOf(ls[1].Targets[0]),
	}
	if dashboard {
		loop[dashHost.key], loop[dashPort.key] = "127.0.0.1", portOf(ls[2].Targets[0])
	}
	w.state.rememberPublic(public)
	err = w.backendSettings(func(path string, s sensu.Settings) error {
		for _, k := range keys {
			w.state.rememberOriginal(path, k.key, s)
			v := sensu.Str(loop[k.key])
			if k.key == agentPort.key || k.key == dashPort.key {
				v.Tag = "!!int"
			}
			s.Set(k.key, v)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if w.node.clusterMember() {
		// The members switch to https peers one at a time (phase 3): one
		// still on http must dial those with a certificate they accept.
		err = w.backendSettings(func(_ string, s sensu.Settings) error {
			sensu.ApplyEtcdPeerTrio(s, w.node.peer().CertPaths)
			return nil
		})
		if err != nil {
			return err
		}
	}
	return w.setDropIn(ls)
}

func portOf(hostport string) string {
	_, p, _ := net.SplitHostPort(hostport)
	return p
}

func applyAgents(w *workspace) error {
	return w.agentSettings(func(_ string, s sensu.Settings) error {
		sensu.ApplyAgentTLS(s, sensu.AgentTLS{CAFile: w.node.agentCA()})
		return nil
	})
}

// backendTLS is what phases 3 and 4 give the backend. etcd requires
// client certificates from phase 3 on whatever the keys say (Sensu's
// etcd-trusted-ca-file is also the CA etcd checks clients against), so
// phase 3 writes etcd-client-cert-auth to say so, and a rollback of phase
// 3 relaxes it with the rest.
func (n *Node) backendTLS(w *workspace, enforce bool) sensu.BackendTLS {
	t := sensu.BackendTLS{
		API:            n.Backend.CertPaths,
		Dashboard:      w.hasDashboard(),
		Etcd:           n.Backend.CertPaths,
		EtcdPeer:       n.peer().CertPaths,
		ClientCertAuth: true,
	}
	if enforce && enforcementOf(n).agentAuth {
		ca := n.Agent.CAFile
		if ca == "" {
			ca = n.Backend.CAFile
		}
		t.AgentAuth = &sensu.CertPaths{CertFile: n.Backend.CertFile, KeyFile: n.Backend.KeyFile, CAFile: ca}
	}
	return t
}

func applyNative(w *workspace) error {
	err := w.backendSettings(func(path string, s sensu.Settings) error {
		w.state.restoreOriginals(path, s)
		sensu.ApplyBackendTLS(s, w.node.backendTLS(w, false))
		return nil
	})
	if err != nil {
		return err
	}
	if w.node.IsBackend() {
		return w.setDropIn(nil)
	}
	return nil
}

func applyEnforce(w *workspace) error {
	err := w.backendSettings(func(_ string, s sensu.Settings) error {
		sensu.ApplyBackendTLS(s, w.node.backendTLS(w, true))
		return nil
	})
	if err != nil {
		return err
	}
	if w.node.bindsAgents() {
		return applyAgentBinding(w)
	}
	return w.agentSettings(func(_ string, s sensu.Settings) error {
		t := sensu.AgentTLS{CAFile: w.node.agentCA()}
		if enforcementOf(w.node).agentCert {
			t.Client = &w.node.Agent.CertPaths
		}
		sensu.ApplyAgentTLS(s, t)
		return nil
	})
}

// dropInFile is the YAML layout of the drop-in: the listeners key of
// sensu-tlsd's own config, with only the fields the bridge sets.
type dropInFile struct {
	Listeners []dropInListener `yaml:"listeners"`
}

type dropInListener struct {
	Name          string   `yaml:"name"`
	Mode          string   `yaml:"mode"`
	Listen        string   `yaml:"listen"`
	Targets       []string `yaml:"targets"`
	Certificate   string   `yaml:"certificate"`
	AllowPlain    bool     `yaml:"allow-plaintext"`
	AgentHeaders  bool     `yaml:"agent-headers,omitempty"`
	ClientCA      string   `yaml:"client-ca,omitempty"`
	AgentIdentity string   `yaml:"agent-identity,omitempty"`
	TargetTLS     bool     `yaml:"target-tls,omitempty"`
	TargetCA      string   `yaml:"target-ca,omitempty"`
	ServerName    string   `yaml:"server-name,omitempty"`
}

const dropInHeader = "# Written by `sensu-tlsd migrate apply --phase 1` (the bridge).\n" +
	"# Removed by phase 3 (native) or a rollback; do not edit.\n"

func (w *workspace) setDropIn(ls []config.Listener) error {
	return w.setDropInAt(DropInPath(w.node.StateDir), dropInHeader, ls)
}

// setDropInAt writes ls to the drop-in at path under header; none removes it.
func (w *workspace) setDropInAt(path, header string, ls []config.Listener) error {
	if len(ls) == 0 {
		w.set(path, nil)
		return nil
	}
	var f dropInFile
	for _, l := range ls {
		f.Listeners = append(f.Listeners, dropInListener{Name: l.Name, Mode: l.Mode, Listen: l.Listen, Targets: l.Targets,
			Certificate: l.Certificate, AllowPlain: l.AllowPlain, AgentHeaders: l.AgentHeaders, ClientCA: l.ClientCA,
			AgentIdentity: l.AgentIdentity, TargetTLS: l.TargetTLS, TargetCA: l.TargetCA, ServerName: l.ServerName})
	}
	var out bytes.Buffer
	out.WriteString(header)
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(f); err != nil {
		return err
	}
	if err := enc.Close(); err != nil {
		return err
	}
	w.set(path, out.Bytes())
	return nil
}
