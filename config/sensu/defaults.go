package sensu

import (
	"net"
	"os"
	"strconv"
	"strings"
)

// Where Sensu Go 6.x's packages put its files, and what its processes do
// with a setting their files leave out. Every part of sensu-tlsd that needs
// a Sensu default (the linter, the cutover, the health gates) reads it here.

// The configs the packaged units start the processes with (-c).
const (
	DefaultBackendConfig = "/etc/sensu/backend.yml"
	DefaultAgentConfig   = "/etc/sensu/agent.yml"
)

// Health endpoints. sensu-backend answers GET /health on its API port;
// sensu-agent answers GET /healthz on its plaintext API (api-host,
// api-port) with 200 once it is connected to a backend, 503 before.
const (
	BackendHealthPath = "/health"
	AgentHealthPath   = "/healthz"
)

// standardEnvFiles are the environment files the packaged units load
// (EnvironmentFile=-, so a missing one is skipped): Debian and Ubuntu,
// then the RHEL family.
var standardEnvFiles = map[Role][]string{
	Backend: {"/etc/default/sensu-backend", "/etc/sysconfig/sensu-backend"},
	Agent:   {"/etc/default/sensu-agent", "/etc/sysconfig/sensu-agent"},
}

// DefaultEnvFiles returns the role's standard environment files that exist.
func DefaultEnvFiles(r Role) []string {
	var out []string
	for _, p := range standardEnvFiles[r] {
		if _, err := os.Stat(p); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// EnvFilesOf is the environment files the role's unit loads: configured
// when it is set (sensu.backend-env-files, sensu.agent-env-files), else
// the packages' standard ones, whether they exist yet or not.
func EnvFilesOf(r Role, configured []string) []string {
	if configured != nil {
		return configured
	}
	return standardEnvFiles[r]
}

// defaults are the values Sensu runs with when no file sets the key (the
// settings sensu-tlsd reads; Sensu has defaults for others too).
var defaults = map[Role]map[string]Value{
	Backend: {
		"api-listen-address":               Str("[::]:8080"),
		"api-url":                          Str("http://localhost:8080"),
		"agent-host":                       Str("[::]"),
		"agent-port":                       Str("8081"),
		"dashboard-host":                   Str("[::]"),
		"dashboard-port":                   Str("3000"),
		"etcd-listen-client-urls":          List("http://127.0.0.1:2379"),
		"etcd-advertise-client-urls":       List("http://localhost:2379"),
		"etcd-listen-peer-urls":            List("http://127.0.0.1:2380"),
		"etcd-initial-advertise-peer-urls": List("http://127.0.0.1:2380"),
		"etcd-initial-cluster":             Str("default=http://127.0.0.1:2380"),
	},
	Agent: {
		// sensu-agent also adds :8081 to a backend-url without a port.
		"backend-url": List("ws://127.0.0.1:8081"),
		"api-host":    Str("127.0.0.1"),
		"api-port":    Str("3031"),
	},
}

// Default is the value the role's process runs with when no file sets key.
func Default(r Role, key string) (Value, bool) {
	v, ok := defaults[r][key]
	return v, ok
}

// defaultStr is the scalar default of key, "" when there is none.
func defaultStr(r Role, key string) string {
	v, _ := Default(r, key)
	return v.Scalar
}

// BackendListeners are where a probe on this machine reaches
// sensu-backend: its API (api-listen-address) and its agent websocket
// (agent-host, agent-port).
type BackendListeners struct {
	API, Agent string // host:port; a wildcard or empty host is 127.0.0.1
	// TLS is true when cert-file and key-file are set: both listeners then
	// serve TLS with that certificate.
	TLS bool
}

// HealthURL is the backend's /health on its API listener.
func (l BackendListeners) HealthURL() string {
	scheme := "http"
	if l.TLS {
		scheme = "https"
	}
	return scheme + "://" + l.API + BackendHealthPath
}

// DefaultBackendListeners are the listeners of a backend whose files set
// none of them (TLS off).
func DefaultBackendListeners() BackendListeners {
	return backendListeners(func(key string) string { return defaultStr(Backend, key) })
}

// backendListeners derives the listeners from str, which returns a
// setting as the backend runs with it (set, else default).
func backendListeners(str func(key string) string) BackendListeners {
	api := str("api-listen-address")
	if host, port, err := net.SplitHostPort(api); err == nil {
		api = net.JoinHostPort(probeHost(host), port)
	}
	port := str("agent-port")
	if _, err := strconv.Atoi(port); err != nil {
		port = defaultStr(Backend, "agent-port") // what Sensu falls back to
	}
	return BackendListeners{
		API:   api,
		Agent: net.JoinHostPort(probeHost(str("agent-host")), port),
		TLS:   str("cert-file") != "" && str("key-file") != "",
	}
}

// DefaultAgentHealthURL is the agent's /healthz on its default API address.
func DefaultAgentHealthURL() string {
	return "http://" + net.JoinHostPort(defaultStr(Agent, "api-host"), defaultStr(Agent, "api-port")) + AgentHealthPath
}

// probeHost is the host a local probe dials for a listen host: loopback
// for a wildcard.
func probeHost(h string) string {
	switch h = strings.Trim(h, "[]"); h {
	case "", "::", "0.0.0.0":
		return "127.0.0.1"
	}
	return h
}

// AgentHealthURL is the agent's /healthz on the API its files set
// (api-host, api-port), where a probe on this machine reaches it.
func (n *Node) AgentHealthURL() string {
	return "http://" + net.JoinHostPort(probeHost(n.Str("api-host")), n.Str("api-port")) + AgentHealthPath
}
