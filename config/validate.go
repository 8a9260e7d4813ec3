package config

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/rotate/pki"
)

// Issuer types: who renews a certificate.
const (
	IssuerLocalCA = "local-ca" // sensu-tlsd's own CA on this node
	IssuerACME    = "acme"     // an ACME directory (step-ca, Vault, Let's Encrypt)
	IssuerExec    = "exec"     // an external command writes the files
	IssuerFiles   = "files"    // another tool renews; sensu-tlsd follows
)

// IssuerTypes lists the issuer types in the order the docs present them.
var IssuerTypes = []string{IssuerLocalCA, IssuerACME, IssuerExec, IssuerFiles}

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
	for i, cert := range c.Certificates {
		key := fmt.Sprintf("certificates[%d]", i)
		if cert.Name == "" {
			bad(key+".name", "every certificate needs a name (it names the files: NAME.pem, NAME-key.pem)")
			continue
		}
		key = fmt.Sprintf("certificates[%d] (%s)", i, cert.Name)
		if err := ValidName(cert.Name); err != nil {
			bad(key+".name", "%v", err)
		}
		if seen[cert.Name] {
			bad(key+".name", "%q is used twice: names must be unique", cert.Name)
		}
		seen[cert.Name] = true
		if _, err := pki.ParseProfile(cert.Profile); err != nil {
			bad(key+".profile", "%v", err)
		}
		if err := pki.CheckKeyType(cert.KeyType); err != nil {
			bad(key+".key-type", "%v", err)
		}
		if err := pki.CheckKeyMode(os.FileMode(cert.KeyMode)); err != nil {
			bad(key+".key-mode", "%v", err)
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
		default:
			bad(key+".issuer.type", "%q: use one of %s", cert.Issuer.Type, strings.Join(IssuerTypes, ", "))
		}
	}
	for i, s := range c.Sensu.certificateRefs() {
		if s != "" && !seen[s] {
			bad("sensu."+sensuRefKeys[i], "names certificate %q, which is not in certificates", s)
		}
	}
	for i, l := range c.Listeners {
		if l.Certificate != "" && !seen[l.Certificate] {
			bad(fmt.Sprintf("listeners[%d].certificate", i), "names certificate %q, which is not in certificates", l.Certificate)
		}
	}
	if len(errs) == 0 {
		return nil
	}
	prefix := "invalid configuration"
	if c.File != "" {
		prefix = c.File + ": " + prefix
	}
	return fmt.Errorf("%s:\n  %w", prefix, joinLines(errs))
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

// ParseRenewBefore reads renewal.before: a share of the lifetime ("33%")
// or a time before expiry ("720h", "30d"). Exactly one result is non-zero.
func ParseRenewBefore(s string) (ratio float64, before time.Duration, err error) {
	if p, ok := strings.CutSuffix(strings.TrimSpace(s), "%"); ok {
		f, perr := strconv.ParseFloat(p, 64)
		if perr != nil || f <= 0 || f >= 100 {
			return 0, 0, fmt.Errorf("%q: a percentage must be between 0 and 100 (exclusive), like 33%%", s)
		}
		return f / 100, 0, nil
	}
	d, derr := ParseDuration(s)
	if derr != nil || d == 0 {
		return 0, 0, fmt.Errorf("%q: use a share of the lifetime (33%%) or a time before expiry (720h, 30d)", s)
	}
	return 0, d, nil
}
