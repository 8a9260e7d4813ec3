package sensu

import (
	"net"
	"net/url"
	"strings"
	"unicode"
)

// Settings is a place Sensu reads settings from: a YAML Document or an
// environment file. The TLS edits are written once against it.
type Settings interface {
	Get(key string) (Value, bool)
	Set(key string, v Value)
}

// CertPaths are the files of one certificate set.
type CertPaths struct {
	CertFile, KeyFile, CAFile string
}

// BackendTLS is what the backend's owned TLS keys must say. Empty parts are
// left alone, so a caller turns on one piece at a time.
type BackendTLS struct {
	// API serves the API (8080), the agent websocket (8081) and, when
	// Dashboard is set, the dashboard (3000): cert-file, key-file,
	// trusted-ca-file, insecure-skip-tls-verify: false, api-url https.
	API       CertPaths
	Dashboard bool
	// Etcd is the embedded etcd's client-side cert (also the backend's etcd
	// client cert): etcd-*-file and every client URL to https.
	Etcd CertPaths
	// EtcdPeer secures member-to-member traffic: the peer trio and every
	// peer URL (listen, initial-advertise, initial-cluster) to https.
	EtcdPeer CertPaths
	// ClientCertAuth makes etcd require client certificates on the client
	// and peer ports (etcd-client-cert-auth, etcd-peer-client-cert-auth).
	ClientCertAuth bool
	// AgentAuth (commercial build only) authenticates agents by certificate.
	AgentAuth *CertPaths
}

// ApplyBackendTLS edits s so the backend serves what t describes.
func ApplyBackendTLS(s Settings, t BackendTLS) {
	if t.API.CertFile != "" {
		s.Set("cert-file", Str(t.API.CertFile))
		s.Set("key-file", Str(t.API.KeyFile))
		if t.API.CAFile != "" {
			s.Set("trusted-ca-file", Str(t.API.CAFile))
		}
		s.Set("insecure-skip-tls-verify", Bool(false))
		rescheme(s, Backend, "api-url", "http", "https", true)
		if t.Dashboard {
			s.Set("dashboard-cert-file", Str(t.API.CertFile))
			s.Set("dashboard-key-file", Str(t.API.KeyFile))
		}
	}
	if t.Etcd.CertFile != "" {
		s.Set("etcd-cert-file", Str(t.Etcd.CertFile))
		s.Set("etcd-key-file", Str(t.Etcd.KeyFile))
		if t.Etcd.CAFile != "" {
			s.Set("etcd-trusted-ca-file", Str(t.Etcd.CAFile))
		}
		rescheme(s, Backend, "etcd-listen-client-urls", "http", "https", true)
		rescheme(s, Backend, "etcd-advertise-client-urls", "http", "https", true)
		rescheme(s, Backend, "etcd-client-urls", "http", "https", false)
		if t.ClientCertAuth {
			s.Set("etcd-client-cert-auth", Bool(true))
		}
	}
	if t.EtcdPeer.CertFile != "" {
		ApplyEtcdPeerTrio(s, t.EtcdPeer)
		rescheme(s, Backend, "etcd-listen-peer-urls", "http", "https", true)
		rescheme(s, Backend, "etcd-initial-advertise-peer-urls", "http", "https", true)
		rescheme(s, Backend, "etcd-initial-cluster", "http", "https", true)
		if t.ClientCertAuth {
			s.Set("etcd-peer-client-cert-auth", Bool(true))
		}
	}
	if t.AgentAuth != nil {
		s.Set("agent-auth-cert-file", Str(t.AgentAuth.CertFile))
		s.Set("agent-auth-key-file", Str(t.AgentAuth.KeyFile))
		if t.AgentAuth.CAFile != "" {
			s.Set("agent-auth-trusted-ca-file", Str(t.AgentAuth.CAFile))
		}
	}
}

// ApplyEtcdPeerTrio sets the peer trio (etcd-peer-cert-file, -key-file,
// -trusted-ca-file) and nothing else. With http peer URLs etcd only warns
// that its own listener ignores them, but it still dials https peers with
// them: a cluster member not yet on https peers can reach one that is.
func ApplyEtcdPeerTrio(s Settings, c CertPaths) {
	s.Set("etcd-peer-cert-file", Str(c.CertFile))
	s.Set("etcd-peer-key-file", Str(c.KeyFile))
	if c.CAFile != "" {
		s.Set("etcd-peer-trusted-ca-file", Str(c.CAFile))
	}
}

// AgentTLS is what the agent's owned TLS keys must say.
type AgentTLS struct {
	CAFile string     // trusted-ca-file: the CA the backends' certs chain to
	Client *CertPaths // agent mTLS (commercial backend): cert-file, key-file
}

// ApplyAgentTLS switches every backend-url to wss (host, port and every
// cluster member kept) and points the agent at the CA.
func ApplyAgentTLS(s Settings, t AgentTLS) {
	rescheme(s, Agent, "backend-url", "ws", "wss", true)
	if t.CAFile != "" {
		s.Set("trusted-ca-file", Str(t.CAFile))
	}
	s.Set("insecure-skip-tls-verify", Bool(false))
	if t.Client != nil {
		s.Set("cert-file", Str(t.Client.CertFile))
		s.Set("key-file", Str(t.Client.KeyFile))
	}
}

// rescheme switches every URL in key from scheme from to scheme to, keeping
// the value's shape (list, comma-separated string, name=URL pairs). An
// absent key is written with the role's default, rescheme'd, when
// withDefault is set.
func rescheme(s Settings, r Role, key, from, to string, withDefault bool) {
	v, ok := s.Get(key)
	if !ok {
		if !withDefault {
			return
		}
		def, known := Default(r, key)
		if !known {
			return
		}
		v = def
	}
	if IsList(key) {
		v, _ = splitURLList(v)
	}
	s.Set(key, MapURLs(v, func(u string) string { return SwapScheme(u, from, to) }))
}

// MapURLs applies f to every URL in v: list entries, each URL of a string
// separated by commas or whitespace, and the URL of each name=URL pair
// (etcd-initial-cluster). Separators are kept as they are.
func MapURLs(v Value, f func(string) string) Value {
	isSep := func(r rune) bool { return r == ',' || unicode.IsSpace(r) }
	mapOne := func(s string) string {
		var b strings.Builder
		for s != "" {
			end := strings.IndexFunc(s, isSep)
			if end < 0 {
				end = len(s)
			}
			tok := s[:end]
			if name, u, ok := strings.Cut(tok, "="); ok && !strings.Contains(name, "://") {
				b.WriteString(name + "=" + f(u))
			} else if tok != "" {
				b.WriteString(f(tok))
			}
			rest := strings.TrimLeftFunc(s[end:], isSep)
			b.WriteString(s[end : len(s)-len(rest)])
			s = rest
		}
		return b.String()
	}
	if v.IsList {
		out := make([]string, len(v.List))
		for i, it := range v.List {
			out[i] = mapOne(it)
		}
		return List(out...)
	}
	return Value{Scalar: mapOne(v.Scalar), Tag: v.Tag}
}

// SwapScheme replaces scheme from by to in u (case-insensitive), leaving
// any other URL untouched.
func SwapScheme(u, from, to string) string {
	if len(u) > len(from)+3 && strings.EqualFold(u[:len(from)+3], from+"://") {
		return to + "://" + u[len(from)+3:]
	}
	return u
}

// URLHost returns the host of a URL or host:port, without brackets; ""
// when there is none.
func URLHost(s string) string {
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil {
			return ""
		}
		return u.Hostname()
	}
	if h, _, err := net.SplitHostPort(s); err == nil {
		return h
	}
	return strings.Trim(s, "[]")
}

// URLs returns every URL a value holds (list entries, comma parts, the
// URL side of name=URL pairs).
func URLs(v Value) []string {
	var out []string
	MapURLs(v, func(u string) string {
		if u != "" {
			out = append(out, u)
		}
		return u
	})
	return out
}
