package config

import (
	"os"
	"time"
)

// Config is sensu-tlsd's own configuration. Field tags are the YAML keys,
// which are also the names of flags and (upper-snake, prefixed SENSU_TLSD_)
// environment variables.
type Config struct {
	StateDir       string        `yaml:"state-dir"`       // CA, generations, ACME storage, migration state
	MetricsAddress string        `yaml:"metrics-address"` // Prometheus /metrics and /healthz; loopback by default, "" disables
	LogLevel       string        `yaml:"log-level"`       // debug, info, warn, error
	LogFormat      string        `yaml:"log-format"`      // text or json
	Renewal        Renewal       `yaml:"renewal"`         // when to renew, for every certificate unless overridden
	CA             CA            `yaml:"ca"`              // the local CA
	Defaults       CertDefaults  `yaml:"defaults"`        // applied to every certificate that leaves a field empty
	Certificates   []Certificate `yaml:"certificates"`
	Sensu          Sensu         `yaml:"sensu"`
	Services       []Service     `yaml:"services"`
	ServiceActions ActionPolicy  `yaml:"service-actions"` // how service actions are batched and run
	Listeners      []Listener    `yaml:"listeners"`
	Events         Events        `yaml:"events"`        // the daemon's own Sensu events, through the local agent
	EnrolServer    EnrolServer   `yaml:"enrol-server"`  // backends: sign agent certificates enrolled over the network
	AgentCutover   AgentCutover  `yaml:"agent-cutover"` // an agent node follows the backends to wss://

	// File is the path the config was read from ("" when none); not a key.
	File string `yaml:"-"`
	// explicit holds the paths of keys a user set (file, env or flag),
	// so a deliberate empty value ("metrics-address: ''" turns metrics
	// off, "jitter: 0s" turns jitter off) is not replaced by a default.
	explicit map[string]bool
}

// Renewal says when a certificate is renewed.
type Renewal struct {
	// Before is "33%" (renew when a third of the lifetime is left) or a
	// duration ("720h") before expiry.
	Before string `yaml:"before"`
	// Jitter is the largest random delay added so a fleet does not renew in
	// the same minute. It is drawn once per process for each distinct set
	// of services: certificates that list the same services (and were
	// issued together) renew together, so the service restarts once;
	// other nodes draw their own.
	Jitter time.Duration `yaml:"jitter"`
	// RetryMin and RetryMax bound the exponential backoff after a failure.
	RetryMin time.Duration `yaml:"retry-min"`
	RetryMax time.Duration `yaml:"retry-max"`
	// Emergency is the time left below which renewal retries at RetryMin
	// without backoff growth.
	Emergency time.Duration `yaml:"emergency"`
	// Generations is how many installed generations are kept for rollback.
	Generations int `yaml:"generations"`
}

// CA describes the local certificate authority.
type CA struct {
	Dir        string        `yaml:"dir"` // holds ca.pem and ca-key.pem; default STATE-DIR, as cfssljson leaves them
	CommonName string        `yaml:"common-name"`
	KeyType    string        `yaml:"key-type"`
	Lifetime   time.Duration `yaml:"lifetime"`
	// Create lets the daemon create the CA on first start when Dir holds
	// none (quickstart); off by default so a wrong path is an error, not a
	// new CA nobody trusts.
	Create bool `yaml:"create"`
}

// CertDefaults are the per-certificate fields that can be set once for all.
type CertDefaults struct {
	KeyType  string        `yaml:"key-type"`
	Lifetime time.Duration `yaml:"lifetime"`
	Owner    string        `yaml:"owner"`
	Group    string        `yaml:"group"`
	KeyMode  FileMode      `yaml:"key-mode"`
	CertMode FileMode      `yaml:"cert-mode"`
	Dir      string        `yaml:"dir"` // where NAME.pem, NAME-key.pem, ca.pem go when paths are not given
}

// Certificate is one managed certificate set: leaf, key and CA bundle.
// Paths default into defaults.dir: NAME.pem, NAME-key.pem and the guide's
// one ca.pem. Certificates may share a ca-file only when they get it from
// the same issuer (the local CA, one exec command, one acme.ca-bundle, or
// the tool behind issuer files); otherwise each install would replace the
// other's bundle, so config validation refuses it and names the key to set.
type Certificate struct {
	Name        string        `yaml:"name"`
	Profile     string        `yaml:"profile"` // backend, etcd-peer, etcd-client, agent, server, client
	CommonName  string        `yaml:"common-name"`
	Hosts       []string      `yaml:"hosts"` // DNS names and IP addresses, as SANs
	CertFile    string        `yaml:"cert-file"`
	KeyFile     string        `yaml:"key-file"`
	CAFile      string        `yaml:"ca-file"`  // default DIR/ca.pem; shared only by certificates of one issuer
	KeyType     string        `yaml:"key-type"` // ecdsa-p256, ecdsa-p384, rsa-2048, rsa-3072, rsa-4096
	Lifetime    time.Duration `yaml:"lifetime"`
	Owner       string        `yaml:"owner"`
	Group       string        `yaml:"group"`
	KeyMode     FileMode      `yaml:"key-mode"`
	CertMode    FileMode      `yaml:"cert-mode"`
	RenewBefore string        `yaml:"renew-before"` // overrides renewal.before
	Issuer      Issuer        `yaml:"issuer"`
	Services    []string      `yaml:"services"` // services that must act when this set changes

	// TrustedCA is a PEM file of the CA(s) the certificate must chain to
	// before it is installed. It is read on every check, so replacing it
	// (old and new CA side by side) is how a CA rollover is done. Default:
	// for local-ca the local CA's ca.pem, for acme acme.ca-bundle when set.
	// Otherwise (exec, files, acme without ca-bundle) there is none: the
	// certificate must chain to the bundle it comes with, and a change of
	// that bundle is logged with the change.
	TrustedCA string `yaml:"trusted-ca"`

	// Namespace (profile agent) is the agent's Sensu namespace: the local
	// CA adds the URI SAN sensu://NAMESPACE/CN, which a proxy listener with
	// agent-identity uri binds to the agent's namespace and name.
	Namespace string `yaml:"namespace"`
}

// Issuer names which source renews a certificate and its settings. Exactly
// one of the type-specific blocks applies, chosen by Type.
type Issuer struct {
	Type  string      `yaml:"type"` // local-ca (default), acme, exec, files, enrol
	ACME  ACMEIssuer  `yaml:"acme"`
	Exec  ExecIssuer  `yaml:"exec"`
	Enrol EnrolIssuer `yaml:"enrol"`
}

// EnrolIssuer enrols an agent node with the backends' enrol-server: the
// key is made here and never leaves the node; the first request is
// authenticated with agent.yml's Sensu credentials, renewals with the
// current certificate.
type EnrolIssuer struct {
	URLs   []string `yaml:"urls"`    // https://BACKEND:8442, tried in order
	CAFile string   `yaml:"ca-file"` // CA verifying the enrol-server's TLS
}

// EnrolServer is the backend side of agent enrolment: an HTTPS endpoint
// that signs agent certificate requests with the local CA by policy.
type EnrolServer struct {
	Listen      string `yaml:"listen"`      // host:port; "" turns enrolment off
	Certificate string `yaml:"certificate"` // managed certificate served (the backend's)
	// SensuAPIURL is where credentials are checked (GET /auth); default
	// the backend's api-url from backend.yml.
	SensuAPIURL string `yaml:"sensu-api-url"`
	// SensuAPICAFile verifies an https Sensu API; default the local CA.
	SensuAPICAFile string        `yaml:"sensu-api-ca-file"`
	Autosign       []string      `yaml:"autosign"` // agent-name globs signed at once; others wait for approval
	Store          string        `yaml:"store"`    // file (this backend) or etcd (the cluster's, from backend.yml)
	Lifetime       time.Duration `yaml:"lifetime"` // of agent certificates; default defaults.lifetime
}

// ACMEIssuer obtains certificates from an ACME directory.
type ACMEIssuer struct {
	Directory   string `yaml:"directory"`    // directory URL
	TrustedRoot string `yaml:"trusted-root"` // PEM file trusted for the directory's TLS
	Email       string `yaml:"email"`
	EABKeyID    string `yaml:"eab-key-id"`
	EABMACKey   string `yaml:"eab-mac-key"`
	Challenge   string `yaml:"challenge"` // http-01 or tls-alpn-01
	HTTPPort    int    `yaml:"http-port"`
	TLSALPNPort int    `yaml:"tls-alpn-port"`
	ListenHost  string `yaml:"listen-host"`
	// CABundle is a PEM file with the roots the issued chain must verify
	// to; it is what gets written to ca-file and the default trusted-ca.
	// Default: the top certificate of the chain the ACME server returns
	// over the TLS connection verified with trusted-root.
	CABundle string `yaml:"ca-bundle"`
	// Storage is certmagic's storage directory; default STATE-DIR/acme.
	Storage string `yaml:"storage"`
}

// ExecIssuer runs an external command that writes the files.
type ExecIssuer struct {
	Command []string      `yaml:"command"` // argument list, not a shell string
	Timeout time.Duration `yaml:"timeout"`
}

// Sensu says where Sensu's own configs are and what build runs.
type Sensu struct {
	BackendConfig string `yaml:"backend-config"`
	AgentConfig   string `yaml:"agent-config"`
	// BackendEnvFiles and AgentEnvFiles are the environment files the
	// Sensu units load (their settings override the YAML file's). Unset:
	// the packages' /etc/default/sensu-* and /etc/sysconfig/sensu-*.
	BackendEnvFiles []string `yaml:"backend-env-files"`
	AgentEnvFiles   []string `yaml:"agent-env-files"`
	// Commercial is true when the backend is Sensu's commercial build, the
	// only one that reads agent-auth-* (agent mTLS).
	Commercial bool `yaml:"commercial"`
	// Manage turns on regeneration of the Sensu configs on rotation.
	Manage bool `yaml:"manage"`
	// BackendCertificate and AgentCertificate name the managed certificates
	// the Sensu configs point at.
	BackendCertificate  string `yaml:"backend-certificate"`
	EtcdPeerCertificate string `yaml:"etcd-peer-certificate"`
	AgentCertificate    string `yaml:"agent-certificate"`
	// AgentMTLS makes the cutover's enforce phase give agents a client
	// certificate (agent-certificate). With Commercial, agent.yml gets
	// cert-file and the backend agent-auth-*. Without it (the open-source
	// backend reads no agent-auth-*, and an agent with cert-file sends no
	// password), sensu-tlsd presents the certificate for the agent and the
	// backend's agent port stays behind a listener that binds each
	// certificate to its agent name. Default false (agents keep Basic auth).
	AgentMTLS bool `yaml:"agent-mtls"`
	// AgentCAFile is the CA bundle agents trust (agent.yml trusted-ca-file).
	// Default "": the ca-file of agent-certificate, else of
	// backend-certificate. Needed on agent-only nodes with no certificates.
	AgentCAFile string `yaml:"agent-ca-file"`
}

// Events makes the daemon post its findings (renewals failing, a
// certificate refused, a service failing its health gate, a cutover step
// refused, and the OK once it recovers) to the local Sensu agent's events
// API, so they reach Sensu's handlers without a scheduled check.
type Events struct {
	Enabled bool `yaml:"enabled"`
	// AgentAPIURL is the agent's events endpoint: its api-host and
	// api-port (3031 unless agent.yml sets another) and the path /events.
	AgentAPIURL string `yaml:"agent-api-url"`
	// Handlers are the Sensu handlers each event names ("" list: the
	// backend's defaults for the check).
	Handlers []string `yaml:"handlers"`
	// Timeout bounds one post; a renewal never waits for it.
	Timeout time.Duration `yaml:"timeout"`
}

// AgentCutover makes the daemon on an agent node switch agent.yml to
// wss:// once every backend in its backend-url serves TLS that verifies
// against the agent's CA, restart sensu-agent and go back if it does not
// reconnect.
type AgentCutover struct {
	Enabled bool `yaml:"enabled"`
	// CAFile is the CA bundle the agent trusts (agent.yml trusted-ca-file):
	// placed by configuration management, or written from the backends'
	// handshake when CAFingerprint pins it. Default sensu.agent-ca-file.
	CAFile string `yaml:"ca-file"`
	// CAFingerprint is the SHA-256 of the CA certificate's DER (hex, colons
	// allowed). Set, the CA is taken from the backends' handshake only when
	// it matches: no trust on first use.
	CAFingerprint    string        `yaml:"ca-fingerprint-sha256"`
	Interval         time.Duration `yaml:"interval"`          // between probes; default 30s
	ReconnectTimeout time.Duration `yaml:"reconnect-timeout"` // how long the restarted agent may take to connect; 0: the sensu-agent preset's health timeout
	// Service is the services entry that restarts sensu-agent; a name no
	// entry has gets the sensu-agent preset (restart sensu-agent.service).
	Service string `yaml:"service"`
}

// Service is a process that must act when a certificate it uses changes.
type Service struct {
	Name    string   `yaml:"name"`
	Preset  string   `yaml:"preset"`   // sensu-backend, sensu-agent, or "" for generic
	Unit    string   `yaml:"unit"`     // systemd unit, for systemd actions
	Action  string   `yaml:"action"`   // restart, reload, try-restart, signal, command, none
	Signal  string   `yaml:"signal"`   // for action signal
	PIDFile string   `yaml:"pid-file"` // signal a pid file instead of a unit's main process
	Command []string `yaml:"command"`  // for action command
	// StopCommand stops a command-action service (a cluster member's
	// sensu-backend is down while etcd moves its peer URLs); Command
	// starts it again.
	StopCommand []string      `yaml:"stop-command"`
	Timeout     time.Duration `yaml:"timeout"`
	Health      Health        `yaml:"health"`
	// OnlyIfRunning leaves a unit that is not running alone (restart and
	// signal actions), so a service stopped on purpose stays stopped.
	// Unset means true.
	OnlyIfRunning *bool `yaml:"only-if-running"`
	// SelfChecked marks an entry a command adds for itself and whose
	// effect it checks on its own (migrate's reload of the daemon, gated
	// on the ports it takes and lets go), so a missing health check is
	// not warned about with an index the user's file does not have.
	SelfChecked bool `yaml:"-"`
}

// ActionPolicy says how changes become service actions.
type ActionPolicy struct {
	// Coalesce is how long a service waits after the first change of a
	// batch for more to join it: changes arriving within it cause one
	// action, and changes arriving while that action runs join one action
	// after it. A set's cert, key and CA are one change already; the window
	// is for several certificates of one service (API and dashboard
	// certificates, backend and etcd), whose renewals fall due together
	// but finish as far apart as issuing takes: milliseconds for local-ca
	// with ECDSA keys, seconds for ACME orders and RSA key generation.
	// Raise it for DNS-01 challenges that wait for propagation. Every
	// action, rollbacks too, waits this long first. Default 10s.
	Coalesce time.Duration `yaml:"coalesce"`
	// Parallel is how many services may act at once. Default 4.
	Parallel int `yaml:"parallel"`
	// SystemdAddress is "" for the system bus (polkit can authorise a
	// non-root sensu-tlsd) or the path of a systemd private socket.
	SystemdAddress string `yaml:"systemd-address"`
	// RestartLockTimeout bounds the wait for the cluster's restart lock
	// before a clustered sensu-backend restarts (another member holding it
	// is restarting and waiting for its health gate). Default 5m.
	RestartLockTimeout time.Duration `yaml:"restart-lock-timeout"`
}

// Health is how sensu-tlsd checks a service came back after an action.
type Health struct {
	URL     string        `yaml:"url"` // HTTP GET must answer 200
	TLS     []string      `yaml:"tls"` // host:port that must present the new serial
	TCP     string        `yaml:"tcp"` // host:port that must accept
	Timeout time.Duration `yaml:"timeout"`
	// Interval is the pause between probes while waiting. Default 250ms.
	Interval time.Duration `yaml:"interval"`
}

// Listener is a proxy listener.
type Listener struct {
	Name        string        `yaml:"name"`
	Mode        string        `yaml:"mode"` // terminate, originate, dual
	Listen      string        `yaml:"listen"`
	Targets     []string      `yaml:"targets"`
	Certificate string        `yaml:"certificate"` // managed certificate served (terminate/dual) or presented (originate)
	ClientCA    string        `yaml:"client-ca"`
	AllowCN     []string      `yaml:"allow-cn"`
	AllowPlain  bool          `yaml:"allow-plaintext"` // dual: accept plaintext too
	TLS13Only   bool          `yaml:"tls13-only"`
	MaxConns    int           `yaml:"max-conns"`
	IdleTimeout time.Duration `yaml:"idle-timeout"`

	AllowDNS         []string      `yaml:"allow-dns"`         // client DNS SANs admitted (mTLS)
	AllowURI         []string      `yaml:"allow-uri"`         // client URI SANs admitted (mTLS)
	TargetCA         string        `yaml:"target-ca"`         // originate: CA verifying targets; default the certificate's ca-file
	ServerName       string        `yaml:"server-name"`       // originate: name verified on targets; default each target's host
	TargetOrder      string        `yaml:"target-order"`      // originate: in-order (first target preferred, default) or spread (targets in turn)
	ALPN             []string      `yaml:"alpn"`              // protocols the target speaks (terminate, dual) or offered to targets (originate); default none: clients use HTTP/1.1
	HandshakeTimeout time.Duration `yaml:"handshake-timeout"` // default 10s
	DialTimeout      time.Duration `yaml:"dial-timeout"`      // default 5s
	DrainTimeout     time.Duration `yaml:"drain-timeout"`     // on shutdown; default 10s
	AgentHeaders     bool          `yaml:"agent-headers"`     // learn Sensu agent names from the upgrade request
	// AgentIdentity binds each client certificate to the agent it connects
	// as: cn (CN == Sensu-AgentName) or uri (URI SAN sensu://NAMESPACE/AGENT);
	// needs client-ca; a mismatch or no certificate gets a 403.
	AgentIdentity string `yaml:"agent-identity"`
	// DenyFile lists certificate serials and agents refused (`serial HEX`,
	// `agent NAME`, `agent NAMESPACE/NAME`); watched, and re-read on SIGHUP.
	DenyFile string `yaml:"deny-file"`
	// TargetTLS: terminate and dual speak TLS to their target too, verified
	// with target-ca (default the certificate's ca-file) and server-name.
	TargetTLS bool `yaml:"target-tls"`
}

// FileMode is an octal file mode written as a string ("0600") in YAML.
type FileMode os.FileMode

// Certificate returns the managed certificate called name.
func (c *Config) Certificate(name string) (*Certificate, bool) {
	for i := range c.Certificates {
		if c.Certificates[i].Name == name {
			return &c.Certificates[i], true
		}
	}
	return nil, false
}
