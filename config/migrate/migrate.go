package migrate

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/sensu-tlsd/sensu-tlsd/config"
	"github.com/sensu-tlsd/sensu-tlsd/config/sensu"
	"github.com/sensu-tlsd/sensu-tlsd/internal/pki"
)

// Phase is a step of the cutover; Plaintext is where every node starts.
type Phase int

const (
	Plaintext Phase = iota
	Bridge
	Agents
	Native
	Enforce
)

// Last is the final phase.
const Last = Enforce

var phaseNames = []string{"plaintext", "bridge", "agents", "native", "enforce"}

func (p Phase) String() string {
	if p >= 0 && int(p) < len(phaseNames) {
		return phaseNames[p]
	}
	return "phase-" + strconv.Itoa(int(p))
}

// Cert is a managed certificate a phase points Sensu at.
type Cert struct {
	Name string
	sensu.CertPaths
}

// Node is one machine's Sensu files and the certificates the cutover uses.
type Node struct {
	StateDir    string
	Files       sensu.Files
	Backend     Cert // served by the bridge and the backend; the etcd client cert too
	EtcdPeer    Cert // "" Name: the peer trio uses Backend
	Agent       Cert // agent client certificate, used when AgentMTLS
	AgentCAFile string
	Commercial  bool
	AgentMTLS   bool
	// RefusePlaintext, when set, makes the bridge listeners TLS-only (true)
	// or dual (false) from this apply on; nil keeps what the bridge was
	// applied with (State.RefusePlaintext).
	RefusePlaintext *bool
	// BridgePorts, when set, are the loopback ports of the bridge from
	// this apply on; nil keeps what the bridge was applied with
	// (State.BridgePorts), else DefaultBridgePorts.
	BridgePorts *BridgePorts
	LintUser    string
	// ConfigFile is the sensu-tlsd config the node was read from, named in
	// the messages that ask for a key to be set there.
	ConfigFile string
}

// IsBackend and IsAgent tell which roles the node has: a role is present
// when its YAML file exists.
func (n *Node) IsBackend() bool { return exists(n.Files.Backend) }
func (n *Node) IsAgent() bool   { return exists(n.Files.Agent) }

func exists(path string) bool {
	if path == "" {
		return false
	}
	_, err := os.Stat(path)
	return err == nil
}

func (n *Node) peer() Cert {
	if n.EtcdPeer.Name == "" {
		return n.Backend
	}
	return n.EtcdPeer
}

func (n *Node) agentCA() string {
	switch {
	case n.AgentCAFile != "":
		return n.AgentCAFile
	case n.AgentMTLS && n.Agent.CAFile != "":
		return n.Agent.CAFile
	}
	return n.Backend.CAFile
}

func (n *Node) dir() string { return filepath.Join(n.StateDir, "migrate") }

// DropInPath is the file the bridge phase writes its proxy listeners to.
func DropInPath(stateDir string) string {
	return filepath.Join(stateDir, "listeners.d", "migrate-bridge.yml")
}

// Need is a certificate (or CA bundle) a phase requires on disk.
type Need struct {
	What  string // "backend certificate \"backend\""
	Files []string
	Why   string
	// unnamed is the config problem when the sensu-tlsd config names no
	// certificate for the need, nil otherwise.
	unnamed error
	set     func() error
}

// Check loads the files and reports what is missing or broken.
func (n Need) Check() error {
	if n.unnamed != nil {
		return n.unnamed
	}
	return n.set()
}

func (n *Node) configFile() string {
	if n.ConfigFile != "" {
		return n.ConfigFile
	}
	return config.DefaultFile
}

// certNeed is certificate c, which the config names under key
// (sensu.backend-certificate...).
func (n *Node) certNeed(c Cert, key, why string, profile pki.Profile) Need {
	need := Need{
		What:  fmt.Sprintf("certificate %q (profile %s)", c.Name, profile),
		Files: []string{c.CertFile, c.KeyFile, c.CAFile},
		Why:   why,
		set: func() error {
			s, err := pki.LoadSet(c.CertFile, c.KeyFile, c.CAFile)
			if err != nil {
				return fmt.Errorf("%v: issue it first (sensu-tlsd issue %s)", err, c.Name)
			}
			if err := pki.Validate(s, pki.Policy{Profile: profile}); err != nil {
				return fmt.Errorf("certificate %q: %v", c.Name, err)
			}
			return nil
		},
	}
	if c.Name == "" || c.CertFile == "" {
		need.What = fmt.Sprintf("a certificate (profile %s)", profile)
		need.unnamed = fmt.Errorf("no certificate named: set sensu.%s in %s to the certificates entry (profile %s) that serves it", key, n.configFile(), profile)
	}
	return need
}

func (n *Node) caNeed(path, why string) Need {
	need := Need{
		What:  "CA bundle",
		Files: []string{path},
		Why:   why,
		set: func() error {
			_, err := pki.ReadCertificates(path)
			return err
		},
	}
	if path == "" {
		need.unnamed = fmt.Errorf("no CA bundle for the agents: set sensu.agent-ca-file or sensu.backend-certificate in %s", n.configFile())
	}
	return need
}

// peerKey is the config key that names the etcd peer certificate.
func (n *Node) peerKey() string {
	if n.EtcdPeer.Name == "" {
		return "backend-certificate"
	}
	return "etcd-peer-certificate"
}

// bridgeKey is a backend listener setting the bridge moves to loopback;
// its default is Sensu's (config/sensu).
type bridgeKey struct {
	key string
}

var (
	apiListen  = bridgeKey{"api-listen-address"}
	agentHost  = bridgeKey{"agent-host"}
	agentPort  = bridgeKey{"agent-port"}
	dashHost   = bridgeKey{"dashboard-host"}
	dashPort   = bridgeKey{"dashboard-port"}
	bridgeKeys = []bridgeKey{apiListen, agentHost, agentPort, dashHost, dashPort}
)

// BridgePorts are the loopback ports the backend listens on while the
// bridge's proxy holds its public ones.
type BridgePorts struct {
	API       int `json:"api"`
	Agent     int `json:"agent"`
	Dashboard int `json:"dashboard,omitempty"` // bridged on the commercial build only
}

// DefaultBridgePorts lie below Linux's default ephemeral range
// (32768-60999), so no outgoing connection holds one when the backend
// restarts onto it, and do not depend on the public ports.
var DefaultBridgePorts = BridgePorts{API: 18080, Agent: 18081, Dashboard: 13000}

// check refuses ports out of range, shared, or equal to a public port.
func (b BridgePorts) check(public []string, dashboard bool) error {
	ports := map[string]int{"api": b.API, "agent": b.Agent}
	if dashboard {
		ports["dashboard"] = b.Dashboard
	}
	seen := map[int]string{}
	for _, name := range []string{"api", "agent", "dashboard"} {
		p, ok := ports[name]
		if !ok {
			continue
		}
		if p <= 0 || p > 65535 {
			return fmt.Errorf("bridge %s port %d is out of range: give --bridge-%s-port a port from 1 to 65535", name, p, name)
		}
		if other, dup := seen[p]; dup {
			return fmt.Errorf("bridge ports: %s and %s are both %d: give each its own port", other, name, p)
		}
		if slices.Contains(public, strconv.Itoa(p)) {
			return fmt.Errorf("bridge %s port %d is a public port of the backend: the proxy takes that one; choose another with --bridge-%s-port", name, p, name)
		}
		seen[p] = name
	}
	return nil
}

// free refuses a loopback port something already listens on: the
// backend would fail to start on it.
func (b BridgePorts) free(dashboard bool) error {
	ports := []struct {
		name string
		port int
	}{{"api", b.API}, {"agent", b.Agent}}
	if dashboard {
		ports = append(ports, struct {
			name string
			port int
		}{"dashboard", b.Dashboard})
	}
	for _, p := range ports {
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p.port)))
		if err != nil {
			return fmt.Errorf("bridge %s port 127.0.0.1:%d is in use (%v): the backend could not listen there; choose a free port with --bridge-%s-port", p.name, p.port, err, p.name)
		}
		l.Close()
	}
	return nil
}

func splitHostPort(addr string) (string, string, error) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", "", fmt.Errorf("api-listen-address %q: %v", addr, err)
	}
	return h, p, nil
}

// listenersFor builds the bridge's proxy listeners from the public
// addresses the backend had; refuse makes them TLS-only.
func (n *Node) listenersFor(public map[string]string, ports BridgePorts, dashboard, refuse bool) ([]config.Listener, error) {
	_, apiPort, err := splitHostPort(public[apiListen.key])
	if err != nil {
		return nil, err
	}
	if err := ports.check([]string{apiPort, public[agentPort.key], public[dashPort.key]}, dashboard); err != nil {
		return nil, err
	}
	apiLoop, agentLoop := strconv.Itoa(ports.API), strconv.Itoa(ports.Agent)
	ls := []config.Listener{
		{Name: "sensu-api", Mode: "dual", Listen: public[apiListen.key], Targets: []string{net.JoinHostPort("127.0.0.1", apiLoop)},
			Certificate: n.Backend.Name, AllowPlain: !refuse},
		{Name: "sensu-agent", Mode: "dual", Listen: net.JoinHostPort(trimBrackets(public[agentHost.key]), public[agentPort.key]),
			Targets: []string{net.JoinHostPort("127.0.0.1", agentLoop)}, Certificate: n.Backend.Name, AllowPlain: !refuse,
			// Agents are counted by name and transport, so `status` shows
			// who still speaks plaintext and phase 3 refuses to cut them off.
			AgentHeaders: true},
	}
	if dashboard {
		dashLoop := strconv.Itoa(ports.Dashboard)
		ls = append(ls, config.Listener{Name: "sensu-dashboard", Mode: "dual",
			Listen:  net.JoinHostPort(trimBrackets(public[dashHost.key]), public[dashPort.key]),
			Targets: []string{net.JoinHostPort("127.0.0.1", dashLoop)}, Certificate: n.Backend.Name, AllowPlain: !refuse})
	}
	return ls, nil
}

func trimBrackets(h string) string {
	if len(h) > 1 && h[0] == '[' && h[len(h)-1] == ']' {
		return h[1 : len(h)-1]
	}
	return h
}

// NodeFromConfig describes this node from sensu-tlsd's config. Files not
// named in files come from the config's sensu section, then the defaults
// (when they exist); env files default to the packages' standard ones.
func NodeFromConfig(cfg *config.Config, files sensu.Files) (*Node, error) {
	pick := func(flag, fromConfig, def string) string {
		switch {
		case flag != "":
			return flag
		case fromConfig != "":
			return fromConfig
		case exists(def):
			return def
		}
		return ""
	}
	files.Backend = pick(files.Backend, cfg.Sensu.BackendConfig, sensu.DefaultBackendConfig)
	files.Agent = pick(files.Agent, cfg.Sensu.AgentConfig, sensu.DefaultAgentConfig)
	envFiles := func(r sensu.Role, configured []string) []string {
		if configured != nil {
			return configured
		}
		return sensu.DefaultEnvFiles(r)
	}
	if files.Backend != "" && files.BackendEnv == nil {
		files.BackendEnv = envFiles(sensu.Backend, cfg.Sensu.BackendEnvFiles)
	}
	if files.Agent != "" && files.AgentEnv == nil {
		files.AgentEnv = envFiles(sensu.Agent, cfg.Sensu.AgentEnvFiles)
	}
	n := &Node{StateDir: cfg.StateDir, Files: files, Commercial: cfg.Sensu.Commercial,
		AgentMTLS: cfg.Sensu.AgentMTLS, AgentCAFile: cfg.Sensu.AgentCAFile, ConfigFile: cfg.File}
	if !n.IsBackend() && !n.IsAgent() {
		return nil, fmt.Errorf("neither a backend nor an agent config found: name them with --backend-config / --agent-config or sensu.backend-config / sensu.agent-config (looked for %s and %s)", sensu.DefaultBackendConfig, sensu.DefaultAgentConfig)
	}
	cert := func(key, name string) (Cert, error) {
		if name == "" {
			return Cert{}, nil
		}
		c, ok := cfg.Certificate(name)
		if !ok {
			return Cert{}, fmt.Errorf("sensu.%s names certificate %q, which is not in certificates", key, name)
		}
		return Cert{Name: name, CertPaths: sensu.CertPaths{CertFile: c.CertFile, KeyFile: c.KeyFile, CAFile: c.CAFile}}, nil
	}
	var err error
	if n.Backend, err = cert("backend-certificate", cfg.Sensu.BackendCertificate); err != nil {
		return nil, err
	}
	if n.EtcdPeer, err = cert("etcd-peer-certificate", cfg.Sensu.EtcdPeerCertificate); err != nil {
		return nil, err
	}
	if n.Agent, err = cert("agent-certificate", cfg.Sensu.AgentCertificate); err != nil {
		return nil, err
	}
	return n, nil
}
