package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/internal/pki"
)

// Issuer types: who renews a certificate.
const (
	IssuerLocalCA = "local-ca" // sensu-tlsd's own CA on this node
	IssuerACME    = "acme"     // an ACME directory (step-ca, Vault, Let's Encrypt)
	IssuerExec    = "exec"     // an external command writes the files
	IssuerFiles   = "files"    // another tool renews; sensu-tlsd follows
	IssuerEnrol   = "enrol"    // the backends' enrol-server signs this node's CSR
)

// IssuerTypes lists the issuer types in the order the docs present them.
var IssuerTypes = []string{IssuerLocalCA, IssuerACME, IssuerExec, IssuerFiles, IssuerEnrol}

// Validate checks the merged, defaulted configuration and reports every
// problem at once, each naming the key and the fix.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if c.MetricsAddress != "" {
		if _, _, err := net.SplitHostPort(c.MetricsAddress); err != nil {
			bad("metrics-address", "%q is not host:port (for example 127.0.0.1:9467; \"\" turns metrics off)", c.MetricsAddress)
		}
	}
	if !oneOf(c.LogLevel, "debug", "info", "warn", "error") {
		bad("log-level", "%q: use debug, info, warn or error", c.LogLevel)
	}
	if !oneOf(c.LogFormat, "text", "json") {
		bad("log-format", "%q: use text or json", c.LogFormat)
	}
	if _, _, err := ParseRenewBefore(c.Renewal.Before); err != nil {
		bad("renewal.before", "%v", err)
	}
	if c.Renewal.RetryMin > c.Renewal.RetryMax {
		bad("renewal.retry-min", "%s is longer than renewal.retry-max %s", c.Renewal.RetryMin, c.Renewal.RetryMax)
	}
	if c.Renewal.Generations < 1 {
		bad("renewal.generations", "must be at least 1 to allow a rollback")
	}
	if err := pki.CheckKeyType(c.CA.KeyType); err != nil {
		bad("ca.key-type", "%v", err)
	}
	seen := map[string]bool{}
	files := map[string]fileUse{} // absolute cert, key and CA paths → first user
	for i, cert := range c.Certificates {
		key := fmt.Sprintf("certificates[%d] (%s)", i, cert.Name)
		if err := ValidName(cert.Name); err != nil {
			bad(key+".name", "%v", err)
		}
		if seen[cert.Name] {
			bad(key+".name", "%q is used twice: names must be unique", cert.Name)
		}
		seen[cert.Name] = true
		errs = append(errs, checkSharedFiles(files, key, cert)...)
		if _, err := pki.ParseProfile(cert.Profile); err != nil {
			bad(key+".profile", "%v", err)
		}
		if err := pki.CheckKeyType(cert.KeyType); err != nil {
			bad(key+".key-type", "%v", err)
		}
		if err := pki.CheckKeyMode(os.FileMode(cert.KeyMode)); err != nil {
			bad(key+".key-mode", "%v", err)
		}
		if cert.Namespace != "" {
			switch {
			case cert.Profile != "agent":
				bad(key+".namespace", "binds an agent certificate to its Sensu namespace; profile %s is no agent's: remove namespace or use profile agent", cert.Profile)
			case !pki.ValidNamespace(cert.Namespace):
				bad(key+".namespace", "%q is not a Sensu namespace: use letters, digits, dots, hyphens and underscores", cert.Namespace)
			}
		}
		for j, h := range cert.Hosts {
			if err := pki.CheckHost(h); err != nil {
				bad(fmt.Sprintf("%s.hosts[%d]", key, j), "%v", err)
			}
		}
		if cert.KeyMode&0o040 != 0 && cert.Group == "" {
			bad(key+".key-mode", "%s gives the group read access but no group is set: set group (for example sensu) or use 0600", cert.KeyMode)
		}
		if _, _, err := ParseRenewBefore(cert.RenewBefore); err != nil {
			bad(key+".renew-before", "%v", err)
		}
		switch cert.Issuer.Type {
		case IssuerLocalCA, IssuerFiles:
		case IssuerACME:
			if cert.Issuer.ACME.Directory == "" {
				bad(key+".issuer.acme.directory", "the ACME issuer needs a directory URL (for example https://ca.example:9000/acme/acme/directory)")
			}
			if !oneOf(cert.Issuer.ACME.Challenge, "http-01", "tls-alpn-01") {
				bad(key+".issuer.acme.challenge", "%q: use http-01 or tls-alpn-01", cert.Issuer.ACME.Challenge)
			}
		case IssuerExec:
			if len(cert.Issuer.Exec.Command) == 0 {
				bad(key+".issuer.exec.command", "the exec issuer needs a command as a list of arguments ([cfssl, gencert, ...])")
			}
		case IssuerEnrol:
			errs = append(errs, checkEnrolIssuer(key, cert)...)
		default:
			bad(key+".issuer.type", "%q: use one of %s", cert.Issuer.Type, strings.Join(IssuerTypes, ", "))
		}
	}
	errs = append(errs, c.checkEnrolServer(seen)...)
	for i, s := range c.Sensu.certificateRefs() {
		if s != "" && !seen[s] {
			bad("sensu."+sensuRefKeys[i], "names certificate %q, which is not in certificates", s)
		}
	}
	for i, l := range c.Listeners {
		if l.Certificate != "" && !seen[l.Certificate] {
			bad(fmt.Sprintf("listeners[%d].certificate", i), "names certificate %q, which is not in certificates", l.Certificate)
		}
		validateBinding(l, fmt.Sprintf("listeners[%d]", i), bad)
	}
	errs = append(errs, c.Events.validate()...)
	errs = append(errs, c.AgentCutover.validate()...)
	if len(errs) == 0 {
		return nil
	}
	prefix := "invalid configuration"
	if c.File != "" {
		prefix = c.File + ": " + prefix
	}
	return fmt.Errorf("%s:\n  %w", prefix, joinLines(errs))
}

// validate checks the events block; the URL is checked even while events
// are off, so turning them on later cannot fail on a value already there.
func (e Events) validate() []error {
	var errs []error
	u, err := url.Parse(e.AgentAPIURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("events.agent-api-url: %q is not an http URL: use the agent's api-host, api-port and /events, for example %s", e.AgentAPIURL, DefaultAgentEventsURL))
	}
	for i, h := range e.Handlers {
		if ValidName(h) != nil {
			errs = append(errs, fmt.Errorf("events.handlers[%d]: %q is not a Sensu handler name (letters, digits, '.', '-' and '_')", i, h))
		}
	}
	return errs
}

// ValidName checks a certificate name. The name becomes file names
// (NAME.pem, NAME-key.pem, STATE/certs/NAME), so it must stay one path
// element: letters, digits, dots, hyphens and underscores, starting with a
// letter or digit.
func ValidName(name string) error {
	ok := name != ""
	for i, r := range name {
		alnum := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
		ok = ok && (alnum || i > 0 && (r == '.' || r == '-' || r == '_'))
	}
	if !ok {
		return fmt.Errorf("certificate name %q is not a plain file name: use letters, digits, '.', '-' and '_', starting with a letter or digit (it names NAME.pem and NAME-key.pem)", name)
	}
	return nil
}

var sensuRefKeys = []string{"backend-certificate", "etcd-peer-certificate", "agent-certificate"}

func (s Sensu) certificateRefs() []string {
	return []string{s.BackendCertificate, s.EtcdPeerCertificate, s.AgentCertificate}
}

// joinLines joins errors one per indented line.
func joinLines(errs []error) error {
	parts := make([]string, len(errs))
	for i, e := range errs {
		parts[i] = e.Error()
	}
	return errors.New(strings.Join(parts, "\n  "))
}

func oneOf(v string, choices ...string) bool {
	for _, c := range choices {
		if v == c {
			return true
		}
	}
	return false
}

// ParseRenewBefore reads renewal.before and renew-before: a share of the
// lifetime ("33%") or a time before expiry ("720h", "30d"). Exactly one
// result is non-zero. It is the only parser of these values: the daemon
// uses what it returns.
func ParseRenewBefore(s string) (ratio float64, before time.Duration, err error) {
	if p, ok := strings.CutSuffix(strings.TrimSpace(s), "%"); ok {
		f, perr := strconv.ParseFloat(p, 64)
		if perr != nil || !(f > 0 && f < 100) { // also rejects NaN
			return 0, 0, fmt.Errorf("%q: a percentage must be between 0 and 100 (exclusive), like 33%%", s)
		}
		return f / 100, 0, nil
	}
	d, derr := ParseDuration(s)
	if derr != nil || d <= 0 {
		return 0, 0, fmt.Errorf("%q: use a share of the lifetime (33%%) or a time before expiry (720h, 30d)", s)
	}
	return 0, d, nil
}

// fileUse is the first certificate that uses a path, for messages.
type fileUse struct {
	key    string // certificates[i] (NAME)
	role   string // cert-file, key-file or ca-file
	source string // caSource, for a ca-file
}

// checkSharedFiles records cert's paths in files and reports any that an
// earlier certificate already uses in a way that cannot work: a cert or
// key file belongs to one certificate, and a CA bundle may only be shared
// by certificates that get it from the same issuer (otherwise each install
// would replace the other's bundle and the two would undo each other).
func checkSharedFiles(files map[string]fileUse, key string, cert Certificate) []error {
	var errs []error
	source := caSource(cert)
	for _, f := range []struct{ role, path string }{{"cert-file", cert.CertFile}, {"key-file", cert.KeyFile}, {"ca-file", cert.CAFile}} {
		abs, err := filepath.Abs(f.path)
		if err != nil {
			abs = filepath.Clean(f.path)
		}
		other, used := files[abs]
		switch {
		case !used:
			files[abs] = fileUse{key: key, role: f.role, source: source}
		case f.role != "ca-file" || other.role != "ca-file":
			errs = append(errs, fmt.Errorf("%s.%s: %s is also the %s of %s: every certificate needs its own cert and key files", key, f.role, f.path, other.role, other.key))
		case other.source != source:
			errs = append(errs, fmt.Errorf("%s.ca-file: %s is also the ca-file of %s, whose CA bundle comes from %s, while this one's comes from %s: each install would replace the other's bundle. Set %s.ca-file to a file of its own (for example %s)",
				key, f.path, other.key, other.source, source, key, filepath.Join(filepath.Dir(f.path), cert.Name+"-ca.pem")))
		}
	}
	return errs
}

// caSource says where the bytes of a certificate's CA bundle come from;
// certificates may share a ca-file only when it is the same. An ACME
// directory without acme.ca-bundle sends each chain with its own top
// certificate (intermediates rotate), so such a bundle is never shared.
func caSource(cert Certificate) string {
	switch cert.Issuer.Type {
	case IssuerACME:
		if cert.Issuer.ACME.CABundle == "" {
			return fmt.Sprintf("the ACME directory %s for %s alone (set acme.ca-bundle to share it)", cert.Issuer.ACME.Directory, cert.Name)
		}
		return fmt.Sprintf("acme.ca-bundle %s", cert.Issuer.ACME.CABundle)
	case IssuerExec:
		return fmt.Sprintf("the exec command %q", strings.Join(cert.Issuer.Exec.Command, " "))
	case IssuerFiles:
		return "the tool that writes it (issuer files)"
	case IssuerEnrol:
		return fmt.Sprintf("the enrol-server at %s", strings.Join(cert.Issuer.Enrol.URLs, " "))
	}
	return "the local CA"
}

// validate checks agent-cutover when it is enabled.
func (a AgentCutover) validate() []error {
	if !a.Enabled {
		return nil
	}
	var errs []error
	if a.CAFile == "" {
		errs = append(errs, errors.New("agent-cutover.ca-file: empty: name the CA bundle the agent is to trust (agent.yml trusted-ca-file), "+
			"a file configuration management puts there or where the CA pinned by ca-fingerprint-sha256 is written (or set sensu.agent-ca-file)"))
	}
	if a.CAFingerprint != "" {
		if _, err := pki.ParseFingerprintSHA256(a.CAFingerprint); err != nil {
			errs = append(errs, fmt.Errorf("agent-cutover.ca-fingerprint-sha256: %w", err))
		}
	}
	if a.Interval < time.Second {
		errs = append(errs, fmt.Errorf("agent-cutover.interval: %s is too short: probe the backends at most once a second (default 30s)", a.Interval))
	}
	if a.ReconnectTimeout != 0 && a.ReconnectTimeout < time.Second {
		errs = append(errs, fmt.Errorf("agent-cutover.reconnect-timeout: %s is too short for sensu-agent to start and connect: use at least 1s, or leave it out for the sensu-agent preset's health timeout", a.ReconnectTimeout))
	}
	return errs
}
