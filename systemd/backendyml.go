package systemd

import (
	"crypto/sha256"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// BackendConfig is the flat key → value view of a sensu-backend backend.yml
// (scalar keys only; lists such as etcd-listen-client-urls are skipped).
type BackendConfig map[string]string

// ParseBackendConfig reads backend.yml content. Unknown keys are kept:
// sensu-backend ignores them too, and the preset only looks up known ones.
func ParseBackendConfig(data []byte) (BackendConfig, error) {
	var raw map[string]any
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return nil, err
	}
	cfg := BackendConfig{}
	for k, v := range raw {
		switch v := v.(type) {
		case string:
			cfg[k] = v
		case int, bool, float64:
			cfg[k] = fmt.Sprint(v)
		}
	}
	return cfg, nil
}

// readBackendConfig reads and parses path and returns a digest of its bytes
// so a change of backend.yml itself can be noticed.
func readBackendConfig(path string) (BackendConfig, [32]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, [32]byte{}, err
	}
	cfg, err := ParseBackendConfig(data)
	if err != nil {
		return nil, [32]byte{}, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, sha256.Sum256(data), nil
}

// backendRestartKeys are the file keys sensu-backend 6.x reads only at
// start: a change to any of them needs a restart.
var backendRestartKeys = []string{"cert-file", "key-file", "trusted-ca-file", "dashboard-cert-file", "dashboard-key-file"}

// backendEtcdKeys are read by the embedded etcd on every handshake: a
// change to only these needs nothing.
var backendEtcdKeys = []string{
	"etcd-cert-file", "etcd-key-file", "etcd-trusted-ca-file",
	"etcd-peer-cert-file", "etcd-peer-key-file", "etcd-peer-trusted-ca-file",
}

// keysFor returns the keys among names whose value is path.
func (c BackendConfig) keysFor(path string, names []string) []string {
	var keys []string
	for _, k := range names {
		if v := c[k]; v != "" && sameFile(v, path) {
			keys = append(keys, k)
		}
	}
	return keys
}

func sameFile(a, b string) bool {
	if a == b {
		return true
	}
	sa, errA := os.Stat(a)
	sb, errB := os.Stat(b)
	return errA == nil && errB == nil && os.SameFile(sa, sb)
}

// tlsOn reports whether the backend serves its API and agent port over TLS.
func (c BackendConfig) tlsOn() bool { return c["cert-file"] != "" && c["key-file"] != "" }

// defaultBackendAPI and defaultBackendAgent are where a local probe
// reaches sensu-backend's listeners on their default addresses
// (api-listen-address [::]:8080, agent-host [::], agent-port 8081).
const (
	defaultBackendAPI   = "127.0.0.1:8080"
	defaultBackendAgent = "127.0.0.1:8081"
)

// apiAddress and agentAddress are where a local probe reaches the
// listeners (a wildcard host becomes loopback).
func (c BackendConfig) apiAddress() string {
	addr := c["api-listen-address"]
	if addr == "" {
		return defaultBackendAPI
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return net.JoinHostPort(probeHost(host), port)
}

func (c BackendConfig) agentAddress() string {
	host, port := c["agent-host"], c["agent-port"]
	if port == "" {
		port = "8081"
	}
	if _, err := strconv.Atoi(port); err != nil {
		port = "8081"
	}
	return net.JoinHostPort(probeHost(host), port)
}

func probeHost(h string) string {
	switch strings.Trim(h, "[]") {
	case "", "::", "0.0.0.0":
		return "127.0.0.1"
	}
	return strings.Trim(h, "[]")
}
