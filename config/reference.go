package config

import (
	"fmt"
	"io"
	"reflect"
	"strings"
	"time"
)

// descriptions says in one line what each key means, by its path in
// docs/config.md (list entries as certificates[].name). It is the one
// place key meanings live: `sensu-tlsd config keys --markdown` renders it,
// and TestReferenceIsCurrent keeps docs/config.md and every key in step.
var descriptions = map[string]string{
	"state-dir":       "Directory for the local CA (unless ca.dir), issued generations, ACME storage, daemon and cutover state.",
	"metrics-address": `Loopback host:port of Prometheus /metrics, /healthz and /agents; "" turns the endpoint off.`,
	"log-level":       "debug, info, warn or error.",
	"log-format":      "text or json (one object a line, for journald or a log shipper).",

	"renewal.before":      `When to renew: "33%" of the lifetime left, or a duration before expiry such as 30d.`,
	"renewal.jitter":      "Largest random delay added to each renewal so a fleet does not renew in the same minute; 0s turns it off.",
	"renewal.retry-min":   "First wait after a failed renewal; the wait doubles up to retry-max.",
	"renewal.retry-max":   "Longest wait between retries of a failing renewal.",
	"renewal.emergency":   "Time left below which a failing renewal retries every retry-min without growing the wait.",
	"renewal.generations": "Installed generations kept on disk for rollback (at least 1).",

	"ca.dir":         "Directory of the local CA's ca.pem and ca-key.pem.",
	"ca.common-name": "Subject CN of a CA sensu-tlsd creates.",
	"ca.key-type":    "Key type of a CA sensu-tlsd creates: ecdsa-p256, ecdsa-p384, rsa-2048, rsa-3072 or rsa-4096.",
	"ca.lifetime":    "Validity of a CA sensu-tlsd creates.",
	"ca.create":      "Create the CA at first start when ca.dir holds none; off, a missing CA is an error instead of a new CA nobody trusts.",

	"defaults.key-type":  "Key type of every certificate that sets none.",
	"defaults.lifetime":  "Validity of every certificate that sets none.",
	"defaults.owner":     `Owner (user name) of installed files; "" keeps sensu-tlsd's own user.`,
	"defaults.group":     `Group of installed files, so a service in it can read a 0640 key; "" keeps sensu-tlsd's own group.`,
	"defaults.key-mode":  `Mode of installed private keys: "0600", or "0640" with a group; a chmod on the files is undone by the next renewal, this is not.`,
	"defaults.cert-mode": "Mode of installed certificates and CA bundles.",
	"defaults.dir":       "Directory of NAME.pem, NAME-key.pem and ca.pem for certificates that give no paths.",

	"certificates":                             "The managed certificate sets, one entry each (keys below).",
	"certificates[].name":                      "Unique name, a plain file name: the default file names, `renew NAME`, services and listeners refer to it.",
	"certificates[].profile":                   "Role from the Sensu guide: backend, etcd-peer, etcd-client, agent, server or client.",
	"certificates[].namespace":                 "Profile agent: the agent's Sensu namespace; the local CA adds the URI SAN sensu://NAMESPACE/CN that agent-identity uri binds.",
	"certificates[].common-name":               "Subject CN; for an agent certificate the agent's name, bound to a Sensu user.",
	"certificates[].hosts":                     "DNS names and IP addresses for the SANs; serving profiles default to the CN.",
	"certificates[].cert-file":                 "Where the leaf (and intermediates) is installed.",
	"certificates[].key-file":                  "Where the private key is installed.",
	"certificates[].ca-file":                   "Where the CA bundle is installed; shared only by certificates of one issuer.",
	"certificates[].key-type":                  "Key type; default defaults.key-type.",
	"certificates[].lifetime":                  "Validity requested; default defaults.lifetime.",
	"certificates[].owner":                     "Owner of the installed files; default defaults.owner.",
	"certificates[].group":                     "Group of the installed files; default defaults.group.",
	"certificates[].key-mode":                  "Mode of the installed key; default defaults.key-mode.",
	"certificates[].cert-mode":                 "Mode of the installed certificate and CA bundle; default defaults.cert-mode.",
	"certificates[].renew-before":              "Overrides renewal.before for this certificate.",
	"certificates[].issuer.type":               "Who renews it: local-ca, acme, exec, files or enrol; `issuer: files` is short for `issuer: {type: files}`.",
	"certificates[].issuer.acme.directory":     "ACME directory URL (step-ca, Vault, Let's Encrypt).",
	"certificates[].issuer.acme.trusted-root":  "PEM file trusted for the directory's own TLS; default the system roots.",
	"certificates[].issuer.acme.email":         "Account contact email.",
	"certificates[].issuer.acme.eab-key-id":    "External account binding key ID, when the directory requires one.",
	"certificates[].issuer.acme.eab-mac-key":   "External account binding MAC key (base64url).",
	"certificates[].issuer.acme.challenge":     "http-01 or tls-alpn-01.",
	"certificates[].issuer.acme.http-port":     "Port the http-01 solver listens on; default 80.",
	"certificates[].issuer.acme.tls-alpn-port": "Port the tls-alpn-01 solver listens on; default 443.",
	"certificates[].issuer.acme.listen-host":   "Address the challenge solvers bind; default all.",
	"certificates[].issuer.acme.ca-bundle":     "PEM roots the issued chain must verify to, written to ca-file; default the top of the chain the server returns.",
	"certificates[].issuer.acme.storage":       "certmagic's storage directory (account, locks).",
	"certificates[].issuer.exec.command":       "Program and arguments, as a list; it gets SENSU_TLSD_* variables and writes the files they name (see examples/exec-cfssl.sh).",
	"certificates[].issuer.exec.timeout":       "Time limit of the command; it and every process it started are killed after it.",
	"certificates[].issuer.enrol.urls":         "https URLs of the backends' enrol-server, tried in order; the key is made on this node and never sent.",
	"certificates[].issuer.enrol.ca-file":      "CA bundle verifying the enrol-server's TLS (the backends' ca.pem); the default trusted-ca.",
	"certificates[].services":                  "Names of services entries that must act when this set changes.",
	"certificates[].trusted-ca":                "PEM file of the CA(s) the certificate must chain to before it is installed; default the local CA's ca.pem (local-ca) or acme.ca-bundle.",

	"sensu.backend-config":        "Sensu's backend.yml.",
	"sensu.agent-config":          "Sensu's agent.yml.",
	"events.enabled":              "Post the daemon's findings (renewals failing, a certificate refused, a failed health gate, a refused cutover step, and the OK on recovery) to the local Sensu agent's events API.",
	"events.agent-api-url":        "The agent's events endpoint (its api-host and api-port, 3031 by default, and /events).",
	"events.handlers":             "Sensu handlers each event names; empty: the backend's defaults for the check.",
	"events.timeout":              "Time one post may take; a renewal never waits for it.",
	"sensu.backend-env-files":     "Environment files the sensu-backend unit loads; their settings override backend.yml. Default /etc/default/sensu-backend and /etc/sysconfig/sensu-backend.",
	"sensu.agent-env-files":       "Environment files the sensu-agent unit loads; their settings override agent.yml. Default /etc/default/sensu-agent and /etc/sysconfig/sensu-agent.",
	"sensu.commercial":            "The backend is Sensu's commercial build, the only one that reads agent-auth-* (agent mTLS).",
	"sensu.manage":                "Rewrite the TLS keys of backend.yml and agent.yml when their certificates change or move.",
	"sensu.backend-certificate":   "Certificate (by name) for the backend's API, agent websocket and etcd.",
	"sensu.etcd-peer-certificate": "Certificate (by name) for etcd peer traffic; default backend-certificate.",
	"sensu.agent-certificate":     "Certificate (by name) the agent presents (agent mTLS).",
	"sensu.agent-mtls":            "At the cutover's enforce phase give agents a client certificate and the backend agent-auth-*; needs commercial.",
	"sensu.agent-ca-file":         "CA bundle agents trust (agent.yml trusted-ca-file); default the agent or backend certificate's ca-file.",

	"services":                   "Processes that act when a certificate they use changes, one entry each (keys below).",
	"services[].name":            "Unique name that certificates[].services lists.",
	"services[].preset":          `sensu-backend or sensu-agent (Sensu's rules: restart, never SIGHUP the agent, health checks), or "" for a generic service.`,
	"services[].unit":            "systemd unit; default the preset's (sensu-backend.service, sensu-agent.service).",
	"services[].action":          "restart, try-restart, reload, signal, command or none; the Sensu presets default to restart.",
	"services[].signal":          "Signal for action signal, such as HUP.",
	"services[].pid-file":        "Signal the process in this pid file instead of the unit's main process.",
	"services[].command":         "Program and arguments for action command. The health gate starts when it returns, so a restart command returns once the old process has stopped (as systemctl restart does); an old process still answering would pass the gate.",
	"services[].stop-command":    "Program and arguments that stop the service, for action command; it returns once the process has exited, and command starts it again. migrate needs it for a cluster member's sensu-backend, which is down while etcd moves its peer URLs (phase 3 and its rollback); systemd units are stopped through systemd.",
	"services[].timeout":         "Time limit of the action.",
	"services[].health.url":      "HTTP URL that must answer 200 after the action; the agent preset checks http://127.0.0.1:3031/healthz.",
	"services[].health.tls":      "host:port list that must present the new certificate's serial after the action.",
	"services[].health.tcp":      "host:port that must accept a connection after the action.",
	"services[].health.timeout":  "How long the health checks may take to pass; default 1m for sensu-backend, 30s otherwise.",
	"services[].health.interval": "Pause between health probes; default 250ms.",
	"services[].only-if-running": "Leave a unit that is not running alone (restart, signal), so a service stopped on purpose stays stopped; unset is true.",

	"service-actions.coalesce":             "Wait after a batch's first change for more to join it, so certificates renewed together cause one action.",
	"service-actions.parallel":             "Services that may act at once.",
	"service-actions.systemd-address":      `"" for the system bus, or the path of a systemd private socket.`,
	"service-actions.restart-lock-timeout": "On a clustered backend (etcd-initial-cluster in backend.yml names more than one member), how long a sensu-backend restart waits for the cluster's restart lock, so members never restart together; past it the renewal fails and is rolled back.",

	"agent-cutover.enabled":               "On an agent node, switch agent.yml to wss:// once every backend in backend-url serves TLS verified by the agent's CA, restart sensu-agent, and go back if it does not reconnect.",
	"agent-cutover.ca-file":               "CA bundle the agent trusts (agent.yml trusted-ca-file): placed by configuration management, or written here from the backends' handshake when ca-fingerprint-sha256 pins it; default sensu.agent-ca-file.",
	"agent-cutover.ca-fingerprint-sha256": "SHA-256 of the CA certificate's DER (hex, colons allowed, as `openssl x509 -fingerprint -sha256` prints it); set, the CA is taken from the backends' handshake only when it matches (no trust on first use).",
	"agent-cutover.interval":              "Time between probes of the backends while agent.yml still says ws://; after switches that went back in a row, the wait doubles with each, up to an hour.",
	"agent-cutover.reconnect-timeout":     "How long the restarted sensu-agent may take to answer /healthz as connected before agent.yml goes back; default the sensu-agent preset's health timeout.",
	"agent-cutover.service":               "services entry that restarts sensu-agent; a name no entry has gets the sensu-agent preset (restart sensu-agent.service, never a signal).",

	"listeners":                     "Proxy listeners putting TLS in front of plaintext Sensu listeners, one entry each (keys below).",
	"listeners[].name":              "Unique name, in logs and metrics.",
	"listeners[].mode":              "terminate (TLS in, plaintext to targets), originate (plaintext in, TLS to targets) or dual (TLS and, while allowed, plaintext in).",
	"listeners[].listen":            "host:port to listen on.",
	"listeners[].targets":           "host:port list to relay to, tried in target-order.",
	"listeners[].certificate":       "Managed certificate (by name) served to clients (terminate, dual) or presented to targets (originate).",
	"listeners[].client-ca":         "CA bundle verifying client certificates; set, it turns on mTLS (terminate, dual).",
	"listeners[].agent-identity":    "Bind each agent to its client certificate: cn (the CN is the Sensu-AgentName) or uri (a URI SAN sensu://NAMESPACE/AGENT); needs client-ca (terminate, dual).",
	"listeners[].deny-file":         "File of refused certificates and agents (lines serial HEX, agent NAME or agent NAMESPACE/NAME); watched, and their sessions closed.",
	"listeners[].target-tls":        "Terminate and dual speak TLS to the target too, verified with ca and server-name.",
	"listeners[].allow-cn":          "Client certificate CNs admitted (mTLS); empty admits any the client-ca signed.",
	"listeners[].allow-plaintext":   "dual: accept plaintext clients too, for the cutover.",
	"listeners[].tls13-only":        "Refuse TLS 1.2.",
	"listeners[].max-conns":         "Most open connections; 0 means no limit.",
	"listeners[].idle-timeout":      "Close a session idle this long; 0 means never.",
	"listeners[].allow-dns":         "Client certificate DNS SANs admitted (mTLS).",
	"listeners[].allow-uri":         "Client certificate URI SANs admitted (mTLS).",
	"listeners[].target-ca":         "originate: CA bundle verifying the targets; default the certificate's ca-file.",
	"listeners[].server-name":       "originate: name verified on the targets; default each target's host.",
	"listeners[].target-order":      "originate: in-order (first target preferred; the default) or spread (targets in turn).",
	"listeners[].alpn":              "Protocols the target speaks (terminate, dual) or offered to targets (originate); default none (HTTP/1.1).",
	"listeners[].handshake-timeout": "Time limit of a client's TLS handshake; default 10s.",
	"listeners[].dial-timeout":      "Time limit of connecting to a target; default 5s.",
	"listeners[].drain-timeout":     "How long open sessions may finish when the listener is closed (shutdown, reload); default 10s.",
	"listeners[].agent-headers":     "Learn Sensu agent names from the websocket upgrade request, for status.",

	"enrol-server.listen":            `host:port of the HTTPS enrolment endpoint on a backend (POST /v1/enrol, /v1/renew); "" turns it off.`,
	"enrol-server.certificate":       "Managed certificate (by name) the endpoint serves, such as the backend's.",
	"enrol-server.sensu-api-url":     "Sensu API checking an agent's credentials (GET /auth); default backend.yml's api-url.",
	"enrol-server.sensu-api-ca-file": "CA bundle verifying an https Sensu API.",
	"enrol-server.autosign":          "Agent-name globs (path.Match: web-*) signed at first enrolment; other names wait for `sensu-tlsd agents approve NAME`.",
	"enrol-server.store":             "Where bindings and approvals live: file (STATE-DIR/enrol, this backend) or etcd (the cluster's etcd from backend.yml's etcd client keys, so every member answers alike).",
	"enrol-server.lifetime":          "Validity of the agent certificates it signs.",
}

// refKey is one key of the reference: every key of Config, the keys of
// each list entry (certificates[].name) included.
type refKey struct {
	Path    string // renewal.before, certificates[].issuer.type
	Type    string // string, duration, list of strings, ...
	Default string // "" when there is none
	Meaning string
}

// reference lists every key of Config in the order of the struct, with
// its type, its default (from ApplyDefaults, the one place defaults live)
// and its meaning.
func reference() []refKey {
	samples := map[string]*Config{"": referenceSample(""), IssuerACME: referenceSample(IssuerACME), IssuerExec: referenceSample(IssuerExec)}
	var out []refKey
	var walk func(t reflect.Type, prefix string, index []int)
	walk = func(t reflect.Type, prefix string, index []int) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name := strings.Split(f.Tag.Get("yaml"), ",")[0]
			if name == "" || name == "-" {
				continue
			}
			path, idx := join(prefix, name), append(append([]int(nil), index...), i)
			switch {
			case f.Type.Kind() == reflect.Struct:
				walk(f.Type, path, idx)
				continue
			case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct:
				out = append(out, refKey{Path: path, Type: "list", Meaning: descriptions[path]})
				walk(f.Type.Elem(), path+"[]", append(idx, -1))
				continue
			}
			sample := samples[""]
			for typ, c := range samples {
				if typ != "" && strings.Contains(path, ".issuer."+typ+".") {
					sample = c
				}
			}
			def := ""
			if !strings.HasSuffix(path, "].name") {
				def = formatDefault(fieldAt(reflect.ValueOf(sample).Elem(), idx))
			}
			out = append(out, refKey{Path: path, Type: typeName(f.Type), Default: def, Meaning: descriptions[path]})
		}
	}
	walk(reflect.TypeOf(Config{}), "", nil)
	return out
}

// referenceSample is the default configuration with one entry in each
// list, its certificate of issuer type issuer ("" for the default), so
// the defaults ApplyDefaults gives list entries show.
func referenceSample(issuer string) *Config {
	c := &Config{
		Certificates: []Certificate{{Name: "NAME", Issuer: Issuer{Type: issuer}}},
		Services:     []Service{{Name: "NAME"}},
		Listeners:    []Listener{{Name: "NAME"}},
	}
	c.ApplyDefaults()
	return c
}

// fieldAt follows index from v, -1 stepping into a list's first entry.
func fieldAt(v reflect.Value, index []int) reflect.Value {
	for _, i := range index {
		if i < 0 {
			v = v.Index(0)
			continue
		}
		v = v.Field(i)
	}
	return v
}

func typeName(t reflect.Type) string {
	switch {
	case t == durationType:
		return "duration"
	case t == fileModeType:
		return "file mode"
	case t.Kind() == reflect.Pointer:
		return typeName(t.Elem())
	case t.Kind() == reflect.Slice:
		return "list of " + typeName(t.Elem()) + "s"
	case t.Kind() == reflect.Int:
		return "integer"
	}
	return t.Kind().String()
}

func formatDefault(v reflect.Value) string {
	if v.IsZero() {
		return ""
	}
	switch v.Type() {
	case durationType:
		return formatDuration(time.Duration(v.Int()))
	case fileModeType:
		return `"` + FileMode(v.Uint()).String() + `"`
	}
	return fmt.Sprint(v.Interface())
}

// formatDuration writes d the way a config would: whole days as 90d,
// else without zero units (10m, not 10m0s).
func formatDuration(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	s := d.String()
	for _, zero := range []string{"0s", "0m"} {
		if strings.HasSuffix(s, "m"+zero) || strings.HasSuffix(s, "h"+zero) {
			s = strings.TrimSuffix(s, zero)
		}
	}
	return s
}

// WriteReference writes docs/config.md: every key with its type, default
// and meaning.
func WriteReference(w io.Writer) error {
	var b strings.Builder
	b.WriteString(`# Configuration reference

<!-- Generated by ` + "`sensu-tlsd config keys --markdown`" + ` from config/reference.go; do not edit.
     Regenerate: go test ./config -run TestReferenceIsCurrent -update -->

sensu-tlsd reads YAML from ` + "`" + DefaultFile + "`" + ` (` + "`--config`, `SENSU_TLSD_CONFIG`" + `). Every key outside the
lists is also a flag and an environment variable: ` + "`renewal.before`" + ` is ` + "`--renewal-before`" + ` and
` + "`SENSU_TLSD_RENEWAL_BEFORE`" + `; a list (certificates, services, listeners) takes YAML there.
Precedence: flag, env, file, default. ` + "`sensu-tlsd config keys`" + ` shows the value in effect.
Durations take days (` + "`90d`" + `) or Go durations (` + "`2160h`, `15m`" + `); file modes are quoted octal
(` + "`\"0640\"`" + `). In defaults, NAME is the entry's name and paths follow state-dir and defaults.dir.
`)
	section := ""
	for _, k := range reference() {
		if s := referenceSection(k.Path); s != section {
			section = s
			fmt.Fprintf(&b, "\n## %s\n\n| key | type | default | meaning |\n|---|---|---|---|\n", section)
		}
		def := ""
		if k.Default != "" {
			def = "`" + k.Default + "`"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", k.Path, k.Type, def, strings.ReplaceAll(k.Meaning, "|", `\|`))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// referenceSection is the heading a key is listed under: its block, list
// or, for a value at the top level, General.
func referenceSection(path string) string {
	if i := strings.IndexAny(path, ".["); i > 0 {
		return "`" + path[:i] + "`"
	}
	if path == "certificates" || path == "services" || path == "listeners" {
		return "`" + path + "`"
	}
	return "General"
}
