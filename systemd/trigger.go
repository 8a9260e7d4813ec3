package systemd

import (
	"fmt"
	"strings"
	"sync"
)

// Decision is what a service does about a batch.
type Decision struct {
	Act    bool
	Reason string
	// Expect is what the health checks must see afterwards.
	Expect Expect
	// Checks are used when the service configures none (the sensu-backend
	// preset derives them from backend.yml at the time of the change, since
	// a ws→wss cutover moves the listeners to TLS).
	Checks []Check
}

// Trigger decides whether a batch concerns a service. Implementations side
// by side: Always (generic), Agent, SensuBackend.
type Trigger interface {
	// Decide is called once per batch and may remember what it saw.
	Decide(b Batch) Decision
	// Probe answers like Decide without remembering anything, for checks
	// made outside a rotation.
	Probe(b Batch) Decision
}

// Always acts on every batch and expects the new serials.
type Always struct{}

// Decide acts.
func (Always) Decide(b Batch) Decision {
	e := Expect{}
	for _, c := range b {
		if c.NewSerial != "" {
			e.Serials = append(e.Serials, c.NewSerial)
		}
	}
	return Decision{Act: true, Reason: "certificate " + strings.Join(b.Names(), ", ") + " changed", Expect: e}
}

// Probe is Decide.
func (a Always) Probe(b Batch) Decision { return a.Decide(b) }

// Agent acts on every batch; sensu-agent is a TLS client, so nothing it
// serves shows a serial.
type Agent struct{}

// Decide acts.
func (Agent) Decide(b Batch) Decision {
	return Decision{Act: true, Reason: "certificate " + strings.Join(b.Names(), ", ") + " changed; sensu-agent reads it at its next connection"}
}

// Probe is Decide.
func (a Agent) Probe(b Batch) Decision { return a.Decide(b) }

// SensuBackend applies sensu-backend 6.x's rules: cert-file, key-file,
// trusted-ca-file (and the dashboard pair) are read only at start, so a
// change needs a restart; the embedded etcd re-reads its files on every
// handshake, so a change to only those needs nothing; a change of
// backend.yml itself needs a restart. Files the backend.yml does not name
// are treated as needing a restart: nothing proves they are harmless.
type SensuBackend struct {
	ConfigFile string

	mu     sync.Mutex
	digest [32]byte
}

// NewSensuBackend remembers the current content of backend.yml so a later
// rewrite is noticed.
func NewSensuBackend(configFile string) *SensuBackend {
	t := &SensuBackend{ConfigFile: configFile}
	if _, d, err := readBackendConfig(configFile); err == nil {
		t.digest = d
	}
	return t
}

// Decide maps each changed file to the backend.yml key naming it, and
// remembers backend.yml's content to notice the next rewrite.
func (t *SensuBackend) Decide(b Batch) Decision { return t.decide(b, true) }

// Probe is Decide without remembering backend.yml's content.
func (t *SensuBackend) Probe(b Batch) Decision { return t.decide(b, false) }

func (t *SensuBackend) decide(b Batch, remember bool) Decision {
	cfg, digest, err := readBackendConfig(t.ConfigFile)
	if err != nil {
		// The gate must not go blind: sensu-backend's own defaults are the
		// best guess of where it listens, with TLS on since it is given
		// certificates.
		return Decision{Act: true, Expect: Always{}.Decide(b).Expect, Checks: backendChecks(defaultBackendAPI, defaultBackendAgent, true),
			Reason: fmt.Sprintf("backend config unreadable (%v); restarting to be safe and checking sensu-backend's default listeners "+
				"(https://%s/health, TLS on %s and %s); fix: make %s readable by sensu-tlsd, or set sensu.backend-config to the backend.yml sensu-backend runs with",
				err, defaultBackendAPI, defaultBackendAPI, defaultBackendAgent, t.ConfigFile)}
	}
	t.mu.Lock()
	rewritten := digest != t.digest
	if remember {
		t.digest = digest
	}
	t.mu.Unlock()

	var restartFor, etcdOnly, unknown []string
	for _, f := range b.Files() {
		if keys := cfg.keysFor(f, backendRestartKeys); len(keys) > 0 {
			restartFor = append(restartFor, strings.Join(keys, "+"))
			continue
		}
		if keys := cfg.keysFor(f, backendEtcdKeys); len(keys) > 0 {
			etcdOnly = append(etcdOnly, strings.Join(keys, "+"))
			continue
		}
		unknown = append(unknown, f)
	}
	d := Decision{Expect: t.expect(cfg, b), Checks: backendChecks(cfg.apiAddress(), cfg.agentAddress(), cfg.tlsOn())}
	switch {
	case len(restartFor) > 0:
		d.Act, d.Reason = true, "backend.yml "+strings.Join(restartFor, ", ")+" changed; sensu-backend reads it only at start"
	case rewritten:
		d.Act, d.Reason = true, t.ConfigFile+" was rewritten"
	case len(unknown) > 0:
		d.Act, d.Reason = true, "changed files not named in "+t.ConfigFile+" ("+strings.Join(unknown, ", ")+"); restarting to be safe"
	default:
		d.Reason = "only " + strings.Join(etcdOnly, ", ") + " changed; etcd re-reads them on every handshake"
	}
	return d
}

// expect wants the serial of the change installed at backend.yml's
// cert-file; with no such change in the batch any certificate will do.
func (t *SensuBackend) expect(cfg BackendConfig, b Batch) Expect {
	for _, c := range b {
		if c.CertFile != "" && cfg["cert-file"] != "" && sameFile(c.CertFile, cfg["cert-file"]) {
			return Expect{Serials: []string{c.NewSerial}, CAFile: c.CAFile}
		}
	}
	return Expect{}
}

// backendChecks are /health on the API port, plus the served serial on the
// API and agent ports when TLS is on.
func backendChecks(api, agent string, tlsOn bool) []Check {
	if !tlsOn {
		return []Check{HTTPCheck{URL: "http://" + api + "/health"}, TCPCheck{Address: agent}}
	}
	return []Check{HTTPCheck{URL: "https://" + api + "/health"}, TLSCheck{Address: api}, TLSCheck{Address: agent}}
}
