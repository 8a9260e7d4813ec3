package rotate

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/config"
	"github.com/sensu-tlsd/sensu-tlsd/config/sensu"
	"github.com/sensu-tlsd/sensu-tlsd/internal/pki"
	"github.com/sensu-tlsd/sensu-tlsd/rotate/ca"
	"github.com/sensu-tlsd/sensu-tlsd/rotate/install"
)

// Plan is one managed certificate with every default resolved: what the
// manager issues, validates and installs.
type Plan struct {
	Name       string
	Profile    pki.Profile
	CommonName string
	Hosts      []string
	// HostsFrom names the Sensu files Hosts were read from when the
	// config sets none for a certificate it ties to Sensu ("" otherwise).
	HostsFrom string
	Namespace string // profile agent: the URI SAN's namespace (see config)
	KeyType   string
	Lifetime  time.Duration
	Paths     install.Paths
	Perms     install.Perms
	Dir       string // STATE/certs/NAME: generations, state file, lock
	// TrustedCA is the file of CAs every candidate must chain to ("" when
	// the candidate's own bundle is the only trust); see config trusted-ca.
	TrustedCA string
	Before    Before
	Jitter    time.Duration
	// JitterShare is where in [0, Jitter) this certificate renews: the same
	// for every certificate of one process that lists the same services.
	JitterShare float64
	RetryMin    time.Duration
	RetryMax    time.Duration
	Emergency   time.Duration
	Keep        int
	Issuer      config.Issuer
	CADir       string
	CA          config.CA
	Sensu       config.Sensu // where the agent's identity is read (issuer enrol)

	// issuer is built once, when the plan is resolved (which checks its
	// settings), and used by every attempt for the plan.
	issuer Issuer
}

// Policy is what every candidate for p must satisfy before it is
// installed. The trusted CAs are read now, so a trusted-ca file replaced on
// disk (a CA rollover) counts from the next check on.
func (p Plan) Policy(now time.Time) (pki.Policy, error) {
	pol := pki.Policy{Profile: p.Profile, Hosts: p.Hosts, Now: now}
	if p.TrustedCA != "" {
		cas, err := pki.ReadCertificates(p.TrustedCA)
		if err != nil {
			if _, serr := os.Stat(p.TrustedCA); errors.Is(serr, fs.ErrNotExist) {
				return pki.Policy{}, fmt.Errorf("trusted-ca: %w: create it with the CA certificates candidates must chain to, or remove trusted-ca", err)
			}
			return pki.Policy{}, fmt.Errorf("trusted-ca: %w", err)
		}
		pol.Trusted, pol.TrustedFile = cas, p.TrustedCA
	}
	return pol, nil
}

// Before is when, ahead of expiry, a certificate is renewed: a fraction of
// its lifetime or a fixed duration.
type Before struct {
	Ratio    float64
	Duration time.Duration
}

// Plans resolves a loaded configuration (config.Load or config.Parse: its
// defaults applied and validated) into one Plan per certificate. It reports
// every certificate that cannot be managed on this machine (an unknown
// owner, an unreadable trusted-ca), each naming the file, the certificate
// and the key at fault, joined.
func Plans(cfg *config.Config) ([]Plan, error) {
	stateDir, err := filepath.Abs(cfg.StateDir)
	if err != nil {
		return nil, fmt.Errorf("%s: state-dir %s: %w", cfgName(cfg), cfg.StateDir, err)
	}
	out := make([]Plan, 0, len(cfg.Certificates))
	var errs []error
	for i, c := range cfg.Certificates {
		p, err := plan(cfg, stateDir, c)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: certificates[%d] (%s): %w", cfgName(cfg), i, c.Name, err))
			continue
		}
		out = append(out, p)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// plan resolves certificate c of cfg; its errors name the key at fault.
func plan(cfg *config.Config, stateDir string, c config.Certificate) (Plan, error) {
	profile, err := pki.ParseProfile(c.Profile)
	if err != nil {
		return Plan{}, fmt.Errorf("profile: %w", err)
	}
	ratio, before, err := config.ParseRenewBefore(c.RenewBefore)
	if err != nil {
		return Plan{}, fmt.Errorf("renew-before: %w", err)
	}
	r := cfg.Renewal
	p := Plan{
		Name:       c.Name,
		Profile:    profile,
		CommonName: c.CommonName,
		Hosts:      c.Hosts,
		Namespace:  c.Namespace,
		KeyType:    c.KeyType,
		Lifetime:   c.Lifetime,
		Paths: install.Paths{Cert: c.CertFile, Key: c.KeyFile, CA: c.CAFile,
			CASource: c.Issuer.Type == config.IssuerLocalCA && samePath(c.CAFile, filepath.Join(cfg.CA.Dir, ca.CertFileName))},
		Perms: install.Perms{
			Owner:    c.Owner,
			Group:    c.Group,
			KeyMode:  os.FileMode(c.KeyMode),
			CertMode: os.FileMode(c.CertMode),
		},
		Dir:         filepath.Join(stateDir, "certs", c.Name),
		TrustedCA:   c.TrustedCA,
		Before:      Before{Ratio: ratio, Duration: before},
		Jitter:      r.Jitter,
		JitterShare: jitterShare(processSeed, c.Name, c.Services),
		RetryMin:    r.RetryMin,
		RetryMax:    r.RetryMax,
		Emergency:   r.Emergency,
		Keep:        r.Generations,
		Issuer:      c.Issuer,
		CADir:       cfg.CA.Dir,
		CA:          cfg.CA,
		Sensu:       cfg.Sensu,
	}
	if p.Hosts, p.HostsFrom, err = sensu.CertificateHosts(cfg.Sensu, c); err != nil {
		return Plan{}, fmt.Errorf("hosts: %w", err)
	}
	if _, err := install.New(p.Dir, p.Paths, p.Keep, p.Perms); err != nil {
		return Plan{}, err
	}
	// The local CA's own file may only appear at the first issue
	// (ca.create); it is read at every validation anyway.
	if p.Issuer.Type != config.IssuerLocalCA {
		if _, err := p.Policy(time.Now()); err != nil {
			return Plan{}, err
		}
	}
	if p.issuer, err = newIssuer(p); err != nil {
		return Plan{}, fmt.Errorf("issuer: %w", err)
	}
	return p, nil
}

func cfgName(cfg *config.Config) string {
	if cfg.File == "" {
		return "config"
	}
	return cfg.File
}

// samePath reports whether a and b name one file, whether or not it exists.
func samePath(a, b string) bool {
	x, errA := filepath.Abs(a)
	y, errB := filepath.Abs(b)
	return errA == nil && errB == nil && x == y
}
