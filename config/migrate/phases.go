package migrate

import (
	"bytes"
	"fmt"
	"net"

	"go.yaml.in/yaml/v3"

	"github.com/sensu-tlsd/sensu-tlsd/config"
	"github.com/sensu-tlsd/sensu-tlsd/config/sensu"
)

// step is one phase: what it does to the files and what it needs.
type step struct {
	phase   Phase
	summary string
	apply   func(w *workspace) error
	needs   func(n *Node) []Need
	notes   func(n *Node) []string
}

var steps = map[Phase]step{
	Bridge: {
		phase:   Bridge,
		summary: "backend listeners move to loopback; sensu-tlsd's proxy serves TLS (and plaintext while allowed) on the public ports",
		apply:   applyBridge,
		needs: func(n *Node) []Need {
			if !n.IsBackend() {
				return nil
			}
			return []Need{n.certNeed(n.Backend, "backend-certificate", "served by the bridge on the API, agent and dashboard ports", "backend")}
		},
		notes: func(n *Node) []string {
			if !n.IsBackend() {
				return []string{"nothing to do on an agent-only node"}
			}
			return []string{"then: systemctl restart sensu-backend (frees the public ports), then reload sensu-tlsd so its proxy takes them"}
		},
	},
	Agents: {
		phase:   Agents,
		summary: "agents connect with wss:// and verify the backends against the CA",
		apply:   applyAgents,
		needs: func(n *Node) []Need {
			if !n.IsAgent() {
				return nil
			}
			return []Need{n.caNeed(n.agentCA(), "agent.yml trusted-ca-file")}
		},
		notes: func(n *Node) []string {
			if !n.IsAgent() {
				return []string{"nothing to do on a backend-only node"}
			}
			return []string{"then: systemctl restart sensu-agent (it dies on SIGHUP); do this on every agent before phase 3"}
		},
	},
	Native: {
		phase:   Native,
		summary: "the backend serves TLS itself (API, agents, etcd client and peer) and the bridge ends",
		apply:   applyNative,
		needs: func(n *Node) []Need {
			if !n.IsBackend() {
				return nil
			}
			return []Need{
				n.certNeed(n.Backend, "backend-certificate", "cert-file/key-file and the etcd client certificate (needs serverAuth and clientAuth)", "backend"),
				n.certNeed(n.peer(), n.peerKey(), "etcd peer trio", "etcd-peer"),
			}
		},
		notes: func(n *Node) []string {
			if !n.IsBackend() {
				return []string{"nothing to do on an agent-only node"}
			}
			return []string{
				"ws:// agents are cut off from here on: phase 2 must be done fleet-wide first",
				"an existing etcd member keeps its stored http:// peer URL: on a cluster run `etcdctl member update ID --peer-urls=https://HOST:2380` for each member",
				"then: reload sensu-tlsd (drops the bridge listeners), then systemctl restart sensu-backend",
			}
		},
	},
	Enforce: {
		phase:   Enforce,
		summary: "plaintext refused everywhere: etcd requires client certificates; agents use certificates when agent mTLS is chosen",
		apply:   applyEnforce,
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
		notes: func(n *Node) []string {
			if n.bindsAgents() {
				return []string{
					"open-source build with agent mTLS: the backend's agent port moves to loopback behind sensu-tlsd, which refuses agents without a certificate naming them (agent-identity cn); sensu-agent connects to sensu-tlsd on " + AgentUplink + ", which presents its certificate",
					"then: systemctl restart sensu-backend, reload sensu-tlsd (its listeners take the agent ports), then systemctl restart sensu-agent",
				}
			}
			return []string{"then: systemctl restart sensu-backend / sensu-agent"}
		},
	},
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

// effective reads a backend setting the way Sensu does: env over file over
// default.
func (w *workspace) effective(k bridgeKey) (string, error) {
	val := k.def
	err := w.backendSettings(func(_ string, s sensu.Settings) error {
		if v, ok := s.Get(k.key); ok && v.Scalar != "" {
			val = v.Scalar
		}
		return nil
	})
	return val, err
}

func (w *workspace) hasDashboard() bool {
	if w.node.Commercial {
		return true
	}
	found := false
	_ = w.backendSettings(func(_ string, s sensu.Settings) error {
		for _, k := range []string{"dashboard-host", "dashboard-port", "dashboard-cert-file"} {
			if _, ok := s.Get(k); ok {
				found = true
			}
		}
		return nil
	})
	return found
}

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
	ls, err := w.node.listenersFor(public, dashboard, w.state.RefusePlaintext)
	if err != nil {
		return fmt.Errorf("%s: %w", w.node.Files.Backend, err)
	}
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

func (n *Node) backendTLS(w *workspace, enforce bool) sensu.BackendTLS {
	t := sensu.BackendTLS{
		API:            n.Backend.CertPaths,
		Dashboard:      w.hasDashboard(),
		Etcd:           n.Backend.CertPaths,
		EtcdPeer:       n.peer().CertPaths,
		ClientCertAuth: enforce,
	}
	if enforce && n.Commercial && n.AgentMTLS {
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
		if w.node.AgentMTLS {
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
