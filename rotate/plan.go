package rotate

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/config"
	"github.com/sensu-tlsd/sensu-tlsd/rotate/ca"
	"github.com/sensu-tlsd/sensu-tlsd/rotate/install"
	"github.com/sensu-tlsd/sensu-tlsd/rotate/pki"
)

// Fallbacks for renewal settings the config leaves at zero.
const (
	defaultBefore      = "33%"
	defaultRetryMin    = 30 * time.Second
	defaultRetryMax    = time.Hour
	defaultGenerations = 5
)

// Plan is one managed certificate with every default resolved: what the
// manager issues, validates and installs.
type Plan struct {
	Name       string
	Profile    pki.Profile
	CommonName string
	Hosts      []string
	KeyType    string
	Lifetime   time.Duration
	Paths      install.Paths
	Perms      install.Perms
	Dir        string // STATE/certs/NAME: generations, state file, lock
	Before     Before
	Jitter     time.Duration
	RetryMin   time.Duration
	RetryMax   time.Duration
	Emergency  time.Duration
	Keep       int
	Issuer     config.Issuer
	StateDir   string
	CADir      string
	CA         config.CA
}

// Policy is what every candidate for p must satisfy before it is installed.
func (p Plan) Policy(now time.Time) pki.Policy {
	return pki.Policy{Profile: p.Profile, Hosts: p.Hosts, Now: now}
}

// Before is when, ahead of expiry, a certificate is renewed: a fraction of
// its lifetime or a fixed duration.
type Before struct {
	Ratio    float64
	Duration time.Duration
}

// ParseBefore reads "33%" or a Go duration such as "720h".
func ParseBefore(s string) (Before, error) {
	if s == "" {
		s = defaultBefore
	}
	if pct, ok := strings.CutSuffix(strings.TrimSpace(s), "%"); ok {
		f, err := strconv.ParseFloat(pct, 64)
		if err != nil || !(f > 0 && f < 100) { // also rejects NaN
			return Before{}, fmt.Errorf("renew-before %q: a percentage must be between 0 and 100, like \"33%%\"", s)
		}
		return Before{Ratio: f / 100}, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return Before{}, fmt.Errorf("renew-before %q: want a share of the lifetime (\"33%%\") or a duration before expiry (\"720h\")", s)
	}
	return Before{Duration: d}, nil
}

// Plans resolves the config into one Plan per certificate. It fails on the
// first certificate that cannot be managed, naming it and the key at fault.
func Plans(cfg *config.Config) ([]Plan, error) {
	if cfg.StateDir == "" {
		return nil, fmt.Errorf("%s: state-dir is empty: set it to a directory sensu-tlsd may write (e.g. /var/lib/sensu-tlsd)", cfgName(cfg))
	}
	stateDir, err := filepath.Abs(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	caDir := cfg.CA.Dir
	if caDir == "" {
		caDir = filepath.Join(stateDir, "ca")
	}
	r := cfg.Renewal
	seen := map[string]bool{}
	owners := map[string]string{} // cert and key paths → certificate name
	var out []Plan
	for i, c := range cfg.Certificates {
		where := fmt.Sprintf("%s: certificates[%d] (%s)", cfgName(cfg), i, c.Name)
		if c.Name == "" || strings.ContainsAny(c.Name, `/\`) || c.Name == "." || c.Name == ".." {
			return nil, fmt.Errorf("%s: name %q must be a non-empty file name", where, c.Name)
		}
		if seen[c.Name] {
			return nil, fmt.Errorf("%s: name %q is used twice; every certificate needs its own name", where, c.Name)
		}
		seen[c.Name] = true
		profile, err := pki.ParseProfile(c.Profile)
		if err != nil {
			return nil, fmt.Errorf("%s: profile: %w", where, err)
		}
		before, err := ParseBefore(first(c.RenewBefore, r.Before))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		d := cfg.Defaults
		dir := first(d.Dir, stateDir)
		def := ca.FilePaths(dir, c.Name)
		p := Plan{
			Name:       c.Name,
			Profile:    profile,
			CommonName: first(c.CommonName, c.Name),
			Hosts:      c.Hosts,
			KeyType:    first(c.KeyType, d.KeyType),
			Lifetime:   firstDur(c.Lifetime, d.Lifetime, ca.DefaultCertLifetime),
			Paths: install.Paths{
				Cert: first(c.CertFile, def.Cert),
				Key:  first(c.KeyFile, def.Key),
				CA:   first(c.CAFile, def.CA),
			},
			Perms: install.Perms{
				Owner:    first(c.Owner, d.Owner),
				Group:    first(c.Group, d.Group),
				KeyMode:  os.FileMode(firstMode(c.KeyMode, d.KeyMode)),
				CertMode: os.FileMode(firstMode(c.CertMode, d.CertMode)),
			},
			Dir:       filepath.Join(stateDir, "certs", c.Name),
			Before:    before,
			Jitter:    r.Jitter,
			RetryMin:  firstDur(r.RetryMin, defaultRetryMin),
			RetryMax:  firstDur(r.RetryMax, defaultRetryMax),
			Emergency: r.Emergency,
			Keep:      r.Generations,
			Issuer:    c.Issuer,
			StateDir:  stateDir,
			CADir:     caDir,
			CA:        cfg.CA,
		}
		if p.Keep == 0 {
			p.Keep = defaultGenerations
		}
		if p.RetryMax < p.RetryMin {
			p.RetryMax = p.RetryMin
		}
		for _, f := range []struct{ key, path string }{{"cert-file", p.Paths.Cert}, {"key-file", p.Paths.Key}} {
			abs, _ := filepath.Abs(f.path)
			if other, ok := owners[abs]; ok {
				return nil, fmt.Errorf("%s: %s %s is also used by certificate %s: every certificate needs its own cert and key files", where, f.key, f.path, other)
			}
			owners[abs] = c.Name
		}
		if _, err := install.New(p.Dir, p.Paths, p.Keep, p.Perms); err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		if _, err := newIssuer(p); err != nil {
			return nil, fmt.Errorf("%s: issuer: %w", where, err)
		}
		out = append(out, p)
	}
	return out, nil
}

func cfgName(cfg *config.Config) string {
	if cfg.File == "" {
		return "config"
	}
	return cfg.File
}

func first(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

func firstDur(vals ...time.Duration) time.Duration {
	for _, v := range vals {
		if v != 0 {
			return v
		}
	}
	return 0
}

func firstMode(vals ...config.FileMode) config.FileMode {
	for _, v := range vals {
		if v != 0 {
			return v
		}
	}
	return 0
}
