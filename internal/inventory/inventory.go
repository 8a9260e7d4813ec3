package inventory

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/config"
	"github.com/sensu-tlsd/sensu-tlsd/config/sensu"
	"github.com/sensu-tlsd/sensu-tlsd/internal/certstate"
	"github.com/sensu-tlsd/sensu-tlsd/internal/pki"
	"github.com/sensu-tlsd/sensu-tlsd/rotate/ca"
)

// Source is one certificate to inspect: where it is and what it should be.
type Source struct {
	Name     string      `json:"name"`               // config name, "backend.yml cert-file", or the file name
	Origin   string      `json:"origin"`             // config, backend.yml, agent.yml, argument
	CertFile string      `json:"cert_file"`          //
	KeyFile  string      `json:"key_file,omitempty"` // "" when unknown
	CAFile   string      `json:"ca_file,omitempty"`  // "" when unknown
	Profile  pki.Profile `json:"profile,omitempty"`  // "" when unknown: the usage check is skipped
	Hosts    []string    `json:"hosts,omitempty"`    // hosts the certificate must cover
	IsCA     bool        `json:"is_ca,omitempty"`    // the file is a trust bundle, not a leaf
	// TrustedCA is the file of CAs the chain must also verify to (the
	// config's trusted-ca); "" when only CAFile is the trust.
	TrustedCA string `json:"trusted_ca,omitempty"`
	// CommonName is the subject CN the certificate must carry ("" when
	// any will do): an agent's, which Sensu binds to a user.
	CommonName string `json:"common_name,omitempty"`
	// AgentNamespace, with CommonName, is the agent's namespace: a
	// sensu:// URI SAN must then name this agent (agent-identity uri).
	AgentNamespace string `json:"agent_namespace,omitempty"`
	// Renew is the command that renews the certificate, for the fix of
	// an expired one; "" when sensu-tlsd does not renew it.
	Renew string `json:"-"`
}

// Entry is what inspecting a Source found. Fields are empty when the
// certificate could not be read; Error then says why.
type Entry struct {
	Source
	Subject string   `json:"subject,omitempty"`
	SANs    []string `json:"sans,omitempty"`
	// Usages are the leaf's extended key usages by name; "any" when it
	// has none, which allows every use.
	Usages   []string      `json:"usages,omitempty"`
	Issuer   string        `json:"issuer,omitempty"`
	Serial   string        `json:"serial,omitempty"`
	NotAfter time.Time     `json:"not_after,omitzero"`
	Left     time.Duration `json:"-"`
	// Seconds is nil when the certificate could not be read, so JSON
	// readers never take an unreadable file for one expiring now.
	Seconds *int64            `json:"seconds_left,omitempty"`
	Checks  []pki.CheckResult `json:"checks,omitempty"`
	Error   string            `json:"error,omitempty"`
	// Broken says Error is about what a file holds (no PEM, a broken key,
	// over its size limit), not about reaching it (missing, permission
	// denied): the file is there and wrong, which a check calls critical.
	Broken bool `json:"broken,omitempty"`
	// Renewal is what the daemon last did for a managed certificate; nil
	// when the daemon never ran for it.
	Renewal *certstate.State `json:"renewal,omitempty"`
}

// OK reports whether the entry was read, passed every check, and its last
// renewal attempt (if the daemon manages it) did not fail.
func (e Entry) OK() bool {
	if e.Error != "" || (e.Renewal != nil && e.Renewal.Failures > 0) {
		return false
	}
	for _, c := range e.Checks {
		if !c.OK {
			return false
		}
	}
	return true
}

// Unjudged reports whether nothing said what the certificate is for (no
// config names it, no --profile), so its usages and SANs were shown, not
// checked.
func (e Entry) Unjudged() bool {
	return !e.IsCA && e.Profile == "" && e.Error == "" && e.Subject+e.Serial != ""
}

// CheckModes is the name of the file-permission check.
const CheckModes = "file modes"

// Inspect reads every source and runs the checks that apply to it.
func Inspect(sources []Source, now time.Time) []Entry {
	out := make([]Entry, len(sources))
	for i, s := range sources {
		out[i] = inspect(s, now)
	}
	return out
}

func inspect(s Source, now time.Time) Entry {
	e := Entry{Source: s}
	chain, err := pki.ReadCertificates(s.CertFile)
	if err != nil {
		e.Error, e.Broken = err.Error(), wrongContent(err)
		return e
	}
	leaf := chain[0]
	e.Subject = leaf.Subject.CommonName
	e.SANs = pki.SANs(leaf)
	e.Usages = pki.ExtKeyUsageNames(leaf)
	if len(e.Usages) == 0 {
		e.Usages = []string{"any"}
	}
	e.Issuer = leaf.Issuer.CommonName
	e.Serial = pki.SerialHex(leaf)
	e.NotAfter = leaf.NotAfter
	// Not truncated: a certificate expired by half a second must still
	// count as expired, not as "expires in 0s".
	e.Left = leaf.NotAfter.Sub(now)
	secs := int64(math.Floor(e.Left.Seconds()))
	e.Seconds = &secs

	set := &pki.Set{Chain: chain, CertFile: s.CertFile, KeyFile: s.KeyFile, CAFile: s.CAFile}
	if s.IsCA {
		set.CA = chain
	}
	var readErrs []string
	if s.KeyFile != "" {
		if set.Key, err = pki.ReadPrivateKey(s.KeyFile); err != nil {
			readErrs = append(readErrs, err.Error())
			e.Broken = e.Broken || wrongContent(err)
		}
	}
	if s.CAFile != "" && !s.IsCA {
		if set.CA, err = pki.ReadCertificates(s.CAFile); err != nil {
			readErrs = append(readErrs, err.Error())
			e.Broken = e.Broken || wrongContent(err)
		}
	}
	pol := pki.Policy{Profile: s.Profile, Hosts: s.Hosts, CommonName: s.CommonName, AgentNamespace: s.AgentNamespace, Renew: s.Renew, Now: now, CA: s.IsCA}
	if s.TrustedCA != "" {
		if pol.Trusted, err = pki.ReadCertificates(s.TrustedCA); err != nil {
			readErrs = append(readErrs, "trusted-ca: "+err.Error())
			e.Broken = e.Broken || wrongContent(err)
		}
		pol.TrustedFile = s.TrustedCA
	}
	e.Checks = pki.Checks(set, pol)
	if s.KeyFile != "" {
		e.Checks = append(e.Checks, modeCheck(s.KeyFile))
	}
	if len(readErrs) > 0 {
		e.Error = strings.Join(readErrs, "; ")
	}
	return e
}

// wrongContent tells a file that is there but holds the wrong thing from
// one that could not be reached.
func wrongContent(err error) bool {
	return !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, fs.ErrPermission)
}

// modeCheck applies pki's key mode rule to the key file as it is on disk.
func modeCheck(keyFile string) pki.CheckResult {
	fi, err := os.Stat(keyFile)
	if err != nil {
		return pki.CheckResult{Name: CheckModes, Detail: err.Error()}
	}
	if err := pki.CheckKeyMode(fi.Mode()); err != nil {
		return pki.CheckResult{Name: CheckModes, Detail: fmt.Sprintf("%s: %v", keyFile, err)}
	}
	return pki.CheckResult{Name: CheckModes, OK: true, Detail: fmt.Sprintf("%04o", fi.Mode().Perm())}
}

// mark is a check's sign in the table: passed, passed with a warning, failed.
func mark(c pki.CheckResult) string {
	switch {
	case !c.OK:
		return markFail
	case c.Warning:
		return markWarn
	}
	return markOK
}

// sanList shows an empty SAN as "" so it is seen, not lost between commas.
func sanList(sans []string) string {
	shown := make([]string, len(sans))
	for i, s := range sans {
		shown[i] = s
		if s == "" {
			shown[i] = `""`
		}
	}
	return strings.Join(shown, ",")
}

// AttachState adds the daemon's persisted renewal state to the entries of
// managed certificates.
func AttachState(entries []Entry, states map[string]certstate.State) {
	for i := range entries {
		if entries[i].Origin != "config" {
			continue
		}
		if st, ok := states[entries[i].Name]; ok {
			entries[i].Renewal = &st
		}
	}
}

// FromConfig lists the managed certificates of c, then the CAs they
// trust: the local CA (with its key) when a certificate uses it, and every
// other ca-file once, since a CA that expires takes its certificates along.
func FromConfig(c *config.Config) []Source {
	out := make([]Source, 0, len(c.Certificates)+1)
	usesLocalCA := false
	for _, cert := range c.Certificates {
		p := pki.Profile(cert.Profile)
		// Unreadable Sensu files leave the CN, and the plan reports them.
		hosts, _, _ := sensu.CertificateHosts(c.Sensu, cert)
		if len(hosts) == 0 && p.Serves() {
			hosts = []string{cert.CommonName}
		}
		s := Source{
			Name: cert.Name, Origin: "config", Profile: p, Hosts: hosts,
			CertFile: cert.CertFile, KeyFile: cert.KeyFile, CAFile: cert.CAFile, TrustedCA: cert.TrustedCA,
		}
		if cert.Issuer.Type != config.IssuerFiles {
			s.Renew = "sensu-tlsd renew " + cert.Name
		}
		if boundAgentCert(c, cert.Name) {
			s.CommonName, s.AgentNamespace = agentIdentity(c.Sensu.AgentConfig, c.Sensu.AgentEnvFiles)
		}
		out = append(out, s)
		usesLocalCA = usesLocalCA || cert.Issuer.Type == config.IssuerLocalCA
	}
	listed := map[string]bool{}
	if usesLocalCA {
		caCert := filepath.Join(c.CA.Dir, ca.CertFileName)
		listed[filepath.Clean(caCert)] = true
		out = append(out, Source{
			Name: "local CA", Origin: "config", CertFile: caCert, KeyFile: filepath.Join(c.CA.Dir, ca.KeyFileName), IsCA: true,
			Renew: "create a new CA (sensu-tlsd ca init --dir NEW-DIR), point ca.dir at it and reissue every certificate",
		})
	}
	for _, cert := range c.Certificates {
		if f := filepath.Clean(cert.CAFile); !listed[f] {
			listed[f] = true
			out = append(out, Source{Name: cert.Name + " ca-file", Origin: "config", CertFile: cert.CAFile, IsCA: true})
		}
	}
	return out
}

// boundAgentCert reports whether managed certificate name is the one this
// node's sensu-tlsd presents for sensu-agent: agent mTLS on the
// open-source build, where a proxy listener binds it to the agent's name
// (config/migrate phase 4). Its CN must then be the agent's name, as for a
// certificate in agent.yml.
func boundAgentCert(c *config.Config, name string) bool {
	return c.Sensu.AgentMTLS && !c.Sensu.Commercial && name != "" && name == c.Sensu.AgentCertificate
}

// FromFiles lists certificate files given on the command line. The key is
// keyFile when given, else found beside the certificate by cfssljson's
// naming (NAME.pem → NAME-key.pem) or the common NAME.crt → NAME.key.
// profile and hosts say what the certificates are for (--profile,
// --hosts); without a profile their usages and SANs are shown, not judged,
// and a self-signed CA certificate is taken for a trust bundle.
func FromFiles(files []string, keyFile, caFile string, profile pki.Profile, hosts []string) ([]Source, error) {
	if keyFile != "" && len(files) != 1 {
		return nil, errors.New("--key names the key of one certificate: give exactly one certificate file with it")
	}
	out := make([]Source, 0, len(files))
	for _, f := range files {
		k := keyFile
		if k == "" {
			k = keyBeside(f)
		}
		out = append(out, Source{Name: filepath.Base(f), Origin: "argument", CertFile: f, KeyFile: k, CAFile: caFile, IsCA: profile == "" && isCAFile(f),
			Profile: profile, Hosts: hosts})
	}
	return out, nil
}

func keyBeside(certFile string) string {
	ext := filepath.Ext(certFile)
	base := strings.TrimSuffix(certFile, ext)
	for _, k := range []string{base + "-key" + ext, base + ".key", base + "-key.pem"} {
		if _, err := os.Stat(k); err == nil {
			return k
		}
	}
	return ""
}

// isCAFile reports whether the first certificate in path is a CA, so a
// trust bundle given as an argument is shown without leaf checks.
func isCAFile(path string) bool {
	certs, err := pki.ReadCertificates(path)
	return err == nil && certs[0].IsCA && isSelfSigned(certs[0])
}

func isSelfSigned(c *x509.Certificate) bool {
	return c.CheckSignatureFrom(c) == nil
}
