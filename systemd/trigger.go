package systemd

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/sensu-tlsd/sensu-tlsd/config/sensu"
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

// SensuBackend decides for sensu-backend from everything it reads: its
// backend.yml and the environment files its unit loads, resolved by
// config/sensu as Sensu resolves them. A changed file named by a setting
// Sensu reads only at start (cert-file, key-file, trusted-ca-file...)
// needs a restart; one named only by settings the embedded etcd re-reads
// on every handshake needs nothing; a rewrite of backend.yml or an
// environment file needs a restart; a file no setting names is not
// sensu-backend's (at the cutover's bridge phase the proxy serves the
// backend certificate), so it needs nothing either. Only when those files
// cannot be read does it restart to be safe.
type SensuBackend struct {
	ConfigFile string
	EnvFiles   []string // missing ones are skipped, as the unit skips them

	mu     sync.Mutex
	digest [32]byte
}

// NewSensuBackend remembers the current content of backend.yml and its
// environment files so a later rewrite is noticed.
func NewSensuBackend(configFile string, envFiles []string) *SensuBackend {
	t := &SensuBackend{ConfigFile: configFile, EnvFiles: envFiles}
	if n, err := t.read(); err == nil {
		t.digest = n.Digest()
	}
	return t
}

func (t *SensuBackend) read() (*sensu.Node, error) {
	return sensu.ReadNode(sensu.Backend, t.ConfigFile, t.EnvFiles)
}

// Decide maps each changed file to the settings naming it, and remembers
// the files' content to notice the next rewrite.
func (t *SensuBackend) Decide(b Batch) Decision { return t.decide(b, true) }

// Probe is Decide without remembering the files' content.
func (t *SensuBackend) Probe(b Batch) Decision { return t.decide(b, false) }

func (t *SensuBackend) decide(b Batch, remember bool) Decision {
	node, err := t.read()
	if err != nil {
		// The gate must not go blind: sensu-backend's own defaults are the
		// best guess of where it listens, with TLS on since it is given
		// certificates.
		l := sensu.DefaultBackendListeners()
		l.TLS = true
		file := t.ConfigFile
		var re *sensu.ReadError
		if errors.As(err, &re) {
			file = re.File
		}
		return Decision{Act: true, Expect: Always{}.Decide(b).Expect, Checks: backendChecks(l),
			Reason: fmt.Sprintf("cannot tell which files sensu-backend reads (%v); restarting to be safe and checking sensu-backend's default listeners "+
				"(%s, TLS on %s and %s); fix: make %s readable by sensu-tlsd, or set sensu.backend-config (and sensu.backend-env-files) to the files sensu-backend runs with",
				err, l.HealthURL(), l.API, l.Agent, file)}
	}
	t.mu.Lock()
	rewritten := node.Digest() != t.digest
	if remember {
		t.digest = node.Digest()
	}
	t.mu.Unlock()

	var atStart, places, reread, config, unread []string
	for _, f := range b.Files() {
		if node.Reads(f) {
			config = append(config, f)
			continue
		}
		keys := node.KeysNaming(f)
		if len(keys) == 0 {
			unread = append(unread, f)
			continue
		}
		var again []string
		for _, k := range keys {
			if !sensu.ReadsAgain(sensu.Backend, k) {
				atStart = appendNew(atStart, k)
				places = appendNew(places, node.Where(k))
			} else {
				again = append(again, k)
			}
		}
		if len(again) == len(keys) {
			reread = append(reread, strings.Join(again, "+"))
		}
	}
	d := Decision{Expect: t.expect(node, b), Checks: backendChecks(node.BackendListeners())}
	switch {
	case len(atStart) > 0:
		d.Act, d.Reason = true, strings.Join(atStart, ", ")+" changed (set in "+strings.Join(places, ", ")+"); sensu-backend reads them only at start"
	case len(config) > 0:
		d.Act, d.Reason = true, strings.Join(config, ", ")+" was rewritten"
	case rewritten:
		d.Act, d.Reason = true, strings.Join(node.Files, " or ")+" was rewritten"
	default:
		var why []string
		if len(reread) > 0 {
			why = append(why, "only "+strings.Join(reread, ", ")+" changed; etcd re-reads them on every handshake")
		}
		if len(unread) > 0 {
			why = append(why, "sensu-backend does not read "+strings.Join(unread, ", ")+
				" (named by no setting in "+strings.Join(node.Files, " or ")+")")
		}
		d.Reason = strings.Join(why, "; ")
	}
	return d
}

func appendNew(list []string, s string) []string {
	if slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}

// expect wants the serial of the change installed at the cert-file
// sensu-backend runs with; with no such change in the batch any
// certificate will do.
func (t *SensuBackend) expect(n *sensu.Node, b Batch) Expect {
	cert := n.Str("cert-file")
	for _, c := range b {
		if c.CertFile != "" && cert != "" && sensu.SameFile(c.CertFile, cert) {
			return Expect{Serials: []string{c.NewSerial}, CAFile: c.CAFile}
		}
	}
	return Expect{}
}

// backendChecks are /health on the API listener, plus the served serial
// on the API and agent listeners when they serve TLS.
func backendChecks(l sensu.BackendListeners) []Check {
	if !l.TLS {
		return []Check{HTTPCheck{URL: l.HealthURL()}, TCPCheck{Address: l.Agent}}
	}
	return []Check{HTTPCheck{URL: l.HealthURL()}, TLSCheck{Address: l.API}, TLSCheck{Address: l.Agent}}
}
