package sensu

import (
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/sensu-tlsd/sensu-tlsd/config"
)

// Role says which Sensu process reads a file.
type Role string

const (
	Backend Role = "backend"
	Agent   Role = "agent"
)

// backendKeys are the settings sensu-backend 6.x reads (its start flags).
var backendKeys = set(
	// TLS (the guide's keys)
	"cert-file", "key-file", "trusted-ca-file", "insecure-skip-tls-verify",
	"dashboard-cert-file", "dashboard-key-file",
	"etcd-cert-file", "etcd-key-file", "etcd-trusted-ca-file", "etcd-client-cert-auth",
	"etcd-peer-cert-file", "etcd-peer-key-file", "etcd-peer-trusted-ca-file", "etcd-peer-client-cert-auth",
	"etcd-cipher-suites", "etcd-max-request-bytes",
	"agent-auth-cert-file", "agent-auth-key-file", "agent-auth-trusted-ca-file", "agent-auth-crl-urls",
	"jwt-private-key-file", "jwt-public-key-file", "require-fips", "require-openssl",
	// listeners
	"api-listen-address", "api-url", "api-request-limit", "api-write-timeout", "api-serve-wait-time",
	"agent-host", "agent-port", "agent-rate-limit", "agent-burst-limit", "agent-write-timeout", "agent-serve-wait-time",
	"dashboard-host", "dashboard-port", "dashboard-write-timeout",
	// embedded or external etcd
	"etcd-listen-client-urls", "etcd-advertise-client-urls", "etcd-client-urls",
	"etcd-listen-peer-urls", "etcd-initial-advertise-peer-urls", "etcd-initial-cluster",
	"etcd-initial-cluster-state", "etcd-initial-cluster-token", "etcd-name", "etcd-discovery",
	"etcd-discovery-srv", "etcd-election-timeout", "etcd-heartbeat-interval", "etcd-quota-backend-bytes",
	"etcd-auto-compaction-mode", "etcd-auto-compaction-retention", "etcd-log-level", "etcd-client-log-level",
	"etcd-client-username", "etcd-client-password", "etcd-unsafe-no-fsync", "no-embed-etcd",
	// general
	"state-dir", "cache-dir", "config-file", "log-level", "debug", "labels", "annotations",
	"deregistration-handler", "event-log-file", "event-log-buffer-size", "event-log-buffer-wait",
	"event-log-parallel-encoders", "eventd-buffer-size", "eventd-workers", "keepalived-buffer-size",
	"keepalived-workers", "pipelined-buffer-size", "pipelined-workers", "assets-rate-limit",
	"assets-burst-limit", "disable-platform-metrics", "platform-metrics-log-file",
	"platform-metrics-logging-interval", "metrics-refresh-interval", "log-millisecond-timestamps",
)

// agentKeys are the settings sensu-agent 6.x reads.
var agentKeys = set(
	"backend-url", "trusted-ca-file", "cert-file", "key-file", "insecure-skip-tls-verify",
	"require-fips", "require-openssl",
	"name", "namespace", "user", "password", "subscriptions", "labels", "annotations",
	"agent-managed-entity", "allow-list", "redact", "deregister", "deregistration-handler",
	"detect-cloud-provider", "discover-processes", "backend-handshake-timeout",
	"backend-heartbeat-interval", "backend-heartbeat-timeout", "max-session-length",
	"retry-min", "retry-max", "retry-multiplier",
	"keepalive-interval", "keepalive-warning-timeout", "keepalive-critical-timeout",
	"keepalive-handlers", "keepalive-pipelines",
	"api-host", "api-port", "disable-api", "socket-host", "socket-port", "disable-sockets",
	"statsd-disable", "statsd-event-handlers", "statsd-flush-interval", "statsd-metrics-host",
	"statsd-metrics-port", "events-rate-limit", "events-burst-limit", "assets-rate-limit",
	"assets-burst-limit", "disable-assets", "cache-dir", "config-file", "log-level", "debug",
)

func set(keys ...string) map[string]bool {
	m := make(map[string]bool, len(keys))
	for _, k := range keys {
		m[k] = true
	}
	return m
}

// KnownKey reports whether the role's process reads key.
func KnownKey(r Role, key string) bool {
	if r == Agent {
		return agentKeys[key]
	}
	return backendKeys[key]
}

// Suggest returns the known key closest to an unknown one, or "", with
// the same rules as sensu-tlsd's own config (config.Suggest): spelling
// variants (cert_file, certfile) map exactly, near typos are suggested.
func Suggest(r Role, key string) string {
	known := backendKeys
	if r == Agent {
		known = agentKeys
	}
	names := make([]string, 0, len(known))
	for k := range known {
		names = append(names, k)
	}
	return config.Suggest(key, names)
}

// roleOnly are keys that exist for one role only, so their presence tells
// which file is which.
var (
	backendOnly = []string{"api-listen-address", "api-url", "agent-host", "agent-port", "dashboard-host",
		"dashboard-port", "dashboard-cert-file", "etcd-listen-client-urls", "etcd-advertise-client-urls",
		"etcd-initial-cluster", "etcd-cert-file", "etcd-peer-cert-file", "state-dir", "agent-auth-cert-file", "no-embed-etcd"}
	agentOnly = []string{"backend-url", "subscriptions", "namespace", "user", "password", "socket-host",
		"socket-port", "api-host", "api-port", "keepalive-interval", "keepalive-warning-timeout",
		"keepalive-critical-timeout", "max-session-length", "agent-managed-entity"}
)

// DetectRole tells a backend config from an agent config by the keys only
// one of them has, then by the file name.
func DetectRole(d *Document) (Role, error) {
	score := 0
	for _, k := range d.Keys() {
		if slices.Contains(backendOnly, k) {
			score++
		}
		if slices.Contains(agentOnly, k) {
			score--
		}
	}
	return roleOf(d.Name, score, "config")
}

// roleOf is the role of the file name, a YAML config or an environment
// file (kind): by its settings first (score > 0: more that only
// sensu-backend has, < 0: more that only sensu-agent has), then by its
// name.
func roleOf(name string, score int, kind string) (Role, error) {
	switch {
	case score > 0:
		return Backend, nil
	case score < 0:
		return Agent, nil
	}
	base := strings.ToLower(filepath.Base(name))
	switch {
	case strings.Contains(base, "backend"):
		return Backend, nil
	case strings.Contains(base, "agent"):
		return Agent, nil
	}
	return "", fmt.Errorf("%s: cannot tell whether this %s is for sensu-backend or sensu-agent (no setting only one of them has, and the name says neither): "+
		"pass --role backend or --role agent", name, kind)
}

// EnvName is the environment variable the role's process reads for key:
// SENSU_BACKEND_CERT_FILE for the backend, SENSU_BACKEND_URL (SENSU_ +
// key) for the agent.
func EnvName(r Role, key string) string {
	suffix := strings.ToUpper(strings.ReplaceAll(key, "-", "_"))
	if r == Backend {
		return "SENSU_BACKEND_" + suffix
	}
	return "SENSU_" + suffix
}

// listKeys are the settings whose value is a list (space-separated in an
// environment file).
var listKeys = set("backend-url", "etcd-listen-client-urls", "etcd-advertise-client-urls", "etcd-client-urls",
	"etcd-listen-peer-urls", "etcd-initial-advertise-peer-urls", "etcd-cipher-suites", "agent-auth-crl-urls",
	"subscriptions", "keepalive-handlers", "keepalive-pipelines", "redact", "statsd-event-handlers")

// IsList reports whether key holds a list.
func IsList(key string) bool { return listKeys[key] }

// urlListKeys are the list settings whose entries are URLs, one per entry.
var urlListKeys = []string{"backend-url", "etcd-listen-client-urls", "etcd-advertise-client-urls", "etcd-client-urls",
	"etcd-listen-peer-urls", "etcd-initial-advertise-peer-urls", "agent-auth-crl-urls"}

// boolKeys are the boolean settings of either role.
var boolKeys = []string{"insecure-skip-tls-verify", "etcd-client-cert-auth", "etcd-peer-client-cert-auth",
	"require-fips", "require-openssl", "debug", "no-embed-etcd", "etcd-unsafe-no-fsync", "disable-platform-metrics",
	"log-millisecond-timestamps", "event-log-parallel-encoders", "deregister", "detect-cloud-provider",
	"discover-processes", "agent-managed-entity", "disable-api", "disable-sockets", "disable-assets", "statsd-disable"}

// SensuItems returns a list setting's entries as Sensu reads them: a YAML
// list entry by entry, a single string (YAML scalar or environment value)
// split on whitespace.
func SensuItems(v Value) []string {
	if v.IsList {
		return v.List
	}
	return strings.Fields(v.Scalar)
}

// splitURLList turns entries that join URLs with commas
// ("ws://a:8081,ws://b:8081") into one entry per URL, which is what the
// operator meant and what Sensu can dial, and reports whether there were
// any. A value without such entries is returned as it is.
func splitURLList(v Value) (Value, bool) {
	items := SensuItems(v)
	if !slices.ContainsFunc(items, func(s string) bool { return strings.Contains(s, ",") }) {
		return v, false
	}
	var out []string
	for _, it := range items {
		for _, part := range strings.Split(it, ",") {
			if p := strings.TrimSpace(part); p != "" {
				out = append(out, p)
			}
		}
	}
	return List(out...), true
}

// yaml11Bools are the words yaml.v2 (Sensu's YAML parser) reads as
// booleans in a plain scalar, beyond strconv's.
var yaml11Bools = map[string]bool{
	"y": true, "Y": true, "yes": true, "Yes": true, "YES": true, "on": true, "On": true, "ON": true,
	"n": false, "N": false, "no": false, "No": false, "NO": false, "off": false, "Off": false, "OFF": false,
}

// sensuBool reads s as Sensu does: viper hands yaml.v2's value to
// cast.ToBool. A plain YAML scalar is a YAML 1.1 boolean (true, yes, on,
// y...) or a number (non-zero is true); a quoted scalar or an environment
// value is a string, read with strconv.ParseBool. ok is false when s is no
// boolean at all, which Sensu silently takes as false.
func sensuBool(s string, plain bool) (b, ok bool) {
	if plain {
		if b, ok := yaml11Bools[s]; ok {
			return b, true
		}
		switch s {
		case "true", "True", "TRUE":
			return true, true
		case "false", "False", "FALSE":
			return false, true
		}
		if n, err := strconv.ParseInt(strings.ReplaceAll(s, "_", ""), 0, 64); err == nil {
			return n != 0, true
		}
		if f, err := strconv.ParseFloat(s, 64); err == nil {
			return f != 0, true
		}
		return false, false
	}
	b, err := strconv.ParseBool(s)
	return b, err == nil
}

// ownedKeys are the keys sensu-tlsd writes (the security guide's); every
// other key belongs to the operator and is never changed.
var ownedKeys = map[Role]map[string]bool{
	Backend: set("cert-file", "key-file", "trusted-ca-file", "insecure-skip-tls-verify", "api-url",
		"dashboard-cert-file", "dashboard-key-file",
		"etcd-listen-client-urls", "etcd-advertise-client-urls", "etcd-client-urls", "etcd-listen-peer-urls",
		"etcd-initial-advertise-peer-urls", "etcd-initial-cluster",
		"etcd-cert-file", "etcd-key-file", "etcd-trusted-ca-file", "etcd-client-cert-auth",
		"etcd-peer-cert-file", "etcd-peer-key-file", "etcd-peer-trusted-ca-file", "etcd-peer-client-cert-auth",
		"agent-auth-cert-file", "agent-auth-key-file", "agent-auth-trusted-ca-file"),
	Agent: set("backend-url", "trusted-ca-file", "cert-file", "key-file", "insecure-skip-tls-verify"),
}

// Owned reports whether sensu-tlsd owns key in the role's file.
func Owned(r Role, key string) bool { return ownedKeys[r][key] }
