package config

import (
	"fmt"
	"net"
	"net/url"
	"path"
	"slices"
	"strings"
)

// checkEnrolIssuer checks the enrol issuer of cert (key names it).
func checkEnrolIssuer(key string, cert Certificate) []error {
	var errs []error
	e := cert.Issuer.Enrol
	if len(e.URLs) == 0 {
		errs = append(errs, fmt.Errorf("%s.issuer.enrol.urls: the enrol issuer needs the https URL of at least one backend's enrol-server (for example https://backend-1:8442)", key))
	}
	for j, u := range e.URLs {
		if p, err := url.Parse(u); err != nil || p.Scheme != "https" || p.Host == "" {
			errs = append(errs, fmt.Errorf("%s.issuer.enrol.urls[%d]: %q is not an https URL (for example https://backend-1:8442)", key, j, u))
		}
	}
	if e.CAFile == "" {
		errs = append(errs, fmt.Errorf("%s.issuer.enrol.ca-file: the enrol issuer needs the CA that signed the backends' certificates (their ca.pem, the file agent.yml's trusted-ca-file names), to verify the enrol-server", key))
	}
	if len(cert.Hosts) > 0 {
		errs = append(errs, fmt.Errorf("%s.hosts: the enrol-server signs the agent's name only (CN and a sensu:// URI), no hosts: remove hosts", key))
	}
	if cert.Profile != "agent" {
		errs = append(errs, fmt.Errorf("%s.profile: %q: the enrol-server signs agent certificates only; set profile: agent", key, cert.Profile))
	}
	return errs
}

// checkEnrolServer checks enrol-server when it is on; seen holds the
// names of the managed certificates.
func (c *Config) checkEnrolServer(seen map[string]bool) []error {
	s := c.EnrolServer
	if s.Listen == "" {
		return nil
	}
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("enrol-server.%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if _, _, err := net.SplitHostPort(s.Listen); err != nil {
		bad("listen", "%q is not host:port (for example :8442)", s.Listen)
	}
	switch {
	case s.Certificate == "":
		bad("certificate", "the enrol-server needs a managed certificate to serve (for example the backend's)")
	case !seen[s.Certificate]:
		bad("certificate", "names certificate %q, which is not in certificates", s.Certificate)
	}
	if s.SensuAPIURL != "" {
		if u, err := url.Parse(s.SensuAPIURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			bad("sensu-api-url", "%q is not the URL of the Sensu API (for example https://127.0.0.1:8080)", s.SensuAPIURL)
		}
	}
	for i, p := range s.Autosign {
		if _, err := path.Match(p, ""); err != nil || p == "" {
			bad(fmt.Sprintf("autosign[%d]", i), "%q is not a glob of agent names (for example web-* or *.dc1)", p)
		}
	}
	if !slices.Contains(EnrolStores, s.Store) {
		bad("store", "%q: use %s", s.Store, strings.Join(EnrolStores, " or "))
	}
	if s.Lifetime <= 0 {
		bad("lifetime", "must be positive, not %s", s.Lifetime)
	}
	return errs
}
