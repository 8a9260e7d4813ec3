package config

import (
	"path/filepath"
	"time"
)

// Default locations.
const (
	DefaultFile     = "/etc/sensu/tlsd.yml"
	DefaultStateDir = "/var/lib/sensu-tlsd"
	// DefaultAgentEventsURL is sensu-agent's events API at its default
	// api-host and api-port.
	DefaultAgentEventsURL = "http://127.0.0.1:3031/events"
)

// ApplyDefaults fills every field left empty. It runs once, after file, env
// and flags are merged, so a default never hides a value a user gave.
func (c *Config) ApplyDefaults() {
	setStr(&c.StateDir, DefaultStateDir)
	if !c.explicit["metrics-address"] {
		setStr(&c.MetricsAddress, "127.0.0.1:9467") // "" set on purpose turns metrics off
	}
	setStr(&c.LogLevel, "info")
	setStr(&c.LogFormat, "text")

	r := &c.Renewal
	setStr(&r.Before, "33%") // certmagic's and certbot's rule: a third of the lifetime left
	if !c.explicit["renewal.jitter"] {
		setDur(&r.Jitter, 10*time.Minute) // 0s set on purpose turns jitter off
	}
	setDur(&r.RetryMin, 30*time.Second)
	setDur(&r.RetryMax, time.Hour)
	setDur(&r.Emergency, 24*time.Hour)
	if r.Generations == 0 {
		r.Generations = 5
	}

	setStr(&c.Events.AgentAPIURL, DefaultAgentEventsURL)
	setDur(&c.Events.Timeout, 2*time.Second) // the agent is on loopback: it answers at once or not at all

	setDur(&c.ServiceActions.Coalesce, 10*time.Second)          // certificates renewed together cause one restart, ACME orders too
	setDur(&c.ServiceActions.RestartLockTimeout, 5*time.Minute) // longer than a backend restart (2m) and its health gate
	if c.ServiceActions.Parallel == 0 {
		c.ServiceActions.Parallel = 4
	}

	if ac := &c.AgentCutover; ac.Enabled {
		setStr(&ac.CAFile, c.Sensu.AgentCAFile)
		setDur(&ac.Interval, 30*time.Second)
		setStr(&ac.Service, "sensu-agent")
	}

	setStr(&c.CA.Dir, c.StateDir) // ca.pem and ca-key.pem beside the certificates, as cfssljson leaves them
	setStr(&c.CA.CommonName, "sensu-tlsd CA")
	setStr(&c.CA.KeyType, "ecdsa-p256")
	setDur(&c.CA.Lifetime, 10*365*24*time.Hour)

	d := &c.Defaults
	setStr(&d.KeyType, "ecdsa-p256")
	setDur(&d.Lifetime, 90*24*time.Hour) // short enough that rotation is routine
	setMode(&d.KeyMode, 0o600)
	setMode(&d.CertMode, 0o644)
	setStr(&d.Dir, c.StateDir)

	setStr(&c.EnrolServer.Store, EnrolStores[0])
	setStr(&c.EnrolServer.SensuAPICAFile, filepath.Join(c.CA.Dir, "ca.pem"))
	setDur(&c.EnrolServer.Lifetime, d.Lifetime)

	for i := range c.Certificates {
		cert := &c.Certificates[i]
		setStr(&cert.CommonName, cert.Name)
		setStr(&cert.CertFile, filepath.Join(d.Dir, cert.Name+".pem"))
		setStr(&cert.KeyFile, filepath.Join(d.Dir, cert.Name+"-key.pem"))
		setStr(&cert.CAFile, filepath.Join(d.Dir, "ca.pem"))
		setStr(&cert.Issuer.Type, IssuerLocalCA)
		if cert.Issuer.Type == IssuerLocalCA {
			setStr(&cert.TrustedCA, filepath.Join(c.CA.Dir, "ca.pem"))
		}
		setStr(&cert.KeyType, d.KeyType)
		setDur(&cert.Lifetime, d.Lifetime)
		setStr(&cert.Owner, d.Owner)
		setStr(&cert.Group, d.Group)
		setMode(&cert.KeyMode, d.KeyMode)
		setMode(&cert.CertMode, d.CertMode)
		setStr(&cert.RenewBefore, r.Before)
		if cert.Issuer.Type == IssuerACME {
			setStr(&cert.Issuer.ACME.Challenge, "http-01")
			setStr(&cert.Issuer.ACME.Storage, filepath.Join(c.StateDir, "acme"))
			setStr(&cert.TrustedCA, cert.Issuer.ACME.CABundle)
		}
		if cert.Issuer.Type == IssuerEnrol {
			setStr(&cert.TrustedCA, cert.Issuer.Enrol.CAFile)
		}
		if cert.Issuer.Type == IssuerExec {
			setDur(&cert.Issuer.Exec.Timeout, 2*time.Minute)
		}
	}
}

// EnrolStores are the enrol-server.store choices.
var EnrolStores = []string{"file", "etcd"}

func setStr(p *string, v string) {
	if *p == "" {
		*p = v
	}
}

func setDur(p *time.Duration, v time.Duration) {
	if *p == 0 {
		*p = v
	}
}

func setMode(p *FileMode, v FileMode) {
	if *p == 0 {
		*p = v
	}
}
