package sensu

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/sensu-tlsd/sensu-tlsd/config"
	"github.com/sensu-tlsd/sensu-tlsd/internal/event"
)

// Standard places the Sensu packages read environment files from
// (Debian/Ubuntu, then RHEL-likes).
var standardEnvFiles = map[Role][]string{
	Backend: {"/etc/default/sensu-backend", "/etc/sysconfig/sensu-backend"},
	Agent:   {"/etc/default/sensu-agent", "/etc/sysconfig/sensu-agent"},
}

// DefaultEnvFiles returns the role's standard environment files that exist.
func DefaultEnvFiles(r Role) []string {
	var out []string
	for _, p := range standardEnvFiles[r] {
		if _, err := os.Stat(p); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// Files are one node's Sensu configs; "" or nil means not on this node.
type Files struct {
	Backend    string
	Agent      string
	BackendEnv []string
	AgentEnv   []string
}

// Regenerator is the event.Subscriber that keeps the Sensu configs
// pointing at the managed certificate files. It follows paths, it never
// turns TLS on: a key is rewritten only when the file already sets it (the
// cutover, package migrate, is what adds TLS keys). Only editing is done
// here; restarting Sensu is Next's job.
//
// Next receives every Change the regenerator accepts, after the rewrite, with the Sensu files
// that were rewritten appended to Change.Files, so a service subscriber
// keyed on Files restarts sensu-backend or sensu-agent exactly when their
// config changed. Wire it as bus.Subscribe(&Regenerator{..., Next: services}),
// not services directly, or the service action sees the change without the
// config paths.
type Regenerator struct {
	Files Files
	// Certificate names from the daemon config (sensu.*-certificate).
	BackendCertificate  string
	EtcdPeerCertificate string // "" means the peer trio follows BackendCertificate
	AgentCertificate    string // "" means agent.yml's CA follows BackendCertificate
	Commercial          bool   // agent-auth-* follow BackendCertificate
	LintUser            string // account for the readability check of the result
	Next                event.Subscriber
}

// CertificateChanged rewrites the Sensu files whose keys point elsewhere
// than the changed set, then hands the change on. A rewrite that would
// leave a file with new lint errors is refused and nothing is written.
func (g *Regenerator) CertificateChanged(ctx context.Context, c event.Change) error {
	written, err := g.regenerate(c)
	c.Files = append(slices.Clone(c.Files), written...)
	if err != nil {
		// Still tell Next about files written before the failure.
		if g.Next != nil && len(written) > 0 {
			err = errors.Join(err, g.Next.CertificateChanged(ctx, c))
		}
		return err
	}
	if g.Next != nil {
		return g.Next.CertificateChanged(ctx, c)
	}
	return nil
}

// keyMap lists which keys of a role's file point at which part of c.
func (g *Regenerator) keyMap(r Role, c event.Change) map[string]string {
	m := map[string]string{}
	peer := g.EtcdPeerCertificate
	if peer == "" {
		peer = g.BackendCertificate
	}
	agentCA := g.AgentCertificate
	if agentCA == "" {
		agentCA = g.BackendCertificate
	}
	switch r {
	case Backend:
		if c.Name == g.BackendCertificate {
			m["cert-file"], m["key-file"], m["trusted-ca-file"] = c.CertFile, c.KeyFile, c.CAFile
			m["dashboard-cert-file"], m["dashboard-key-file"] = c.CertFile, c.KeyFile
			m["etcd-cert-file"], m["etcd-key-file"], m["etcd-trusted-ca-file"] = c.CertFile, c.KeyFile, c.CAFile
			if g.Commercial {
				m["agent-auth-cert-file"], m["agent-auth-key-file"], m["agent-auth-trusted-ca-file"] = c.CertFile, c.KeyFile, c.CAFile
			}
		}
		if c.Name == peer {
			m["etcd-peer-cert-file"], m["etcd-peer-key-file"], m["etcd-peer-trusted-ca-file"] = c.CertFile, c.KeyFile, c.CAFile
		}
	case Agent:
		if c.Name == agentCA {
			m["trusted-ca-file"] = c.CAFile
		}
		if c.Name == g.AgentCertificate {
			m["cert-file"], m["key-file"] = c.CertFile, c.KeyFile
		}
	}
	for k, v := range m {
		if v == "" {
			delete(m, k)
		}
	}
	return m
}

// follow sets every mapped key the settings already set to its new path.
func follow(s Settings, m map[string]string) {
	for key, path := range m {
		if cur, ok := s.Get(key); ok && cur.Scalar != "" {
			s.Set(key, Str(path))
		}
	}
}

func (g *Regenerator) regenerate(c event.Change) ([]string, error) {
	type pending struct {
		path string
		data []byte
	}
	var todo []pending
	var errs []error
	for _, f := range []struct {
		role Role
		yml  string
		env  []string
	}{{Backend, g.Files.Backend, g.Files.BackendEnv}, {Agent, g.Files.Agent, g.Files.AgentEnv}} {
		m := g.keyMap(f.role, c)
		if len(m) == 0 {
			continue
		}
		if f.yml != "" {
			data, changed, err := g.rewriteYAML(f.yml, f.role, m)
			switch {
			case err != nil:
				errs = append(errs, err)
			case changed:
				todo = append(todo, pending{f.yml, data})
			}
		}
		for _, envPath := range f.env {
			src, err := os.ReadFile(envPath)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			e, err := ParseEnvFile(envPath, src, f.role)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			follow(e, m)
			if e.Changed() {
				todo = append(todo, pending{envPath, e.Bytes()})
			}
		}
	}
	// A refused file means nothing is written: the configs stay consistent
	// with each other.
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	var written []string
	for _, p := range todo {
		if _, err := WriteFile(p.path, p.data); err != nil {
			return written, fmt.Errorf("writing %s: %w", p.path, err)
		}
		written = append(written, p.path)
	}
	return written, nil
}

// rewriteYAML returns the file's new bytes, refusing a result with lint
// errors the current file does not have.
func (g *Regenerator) rewriteYAML(path string, r Role, m map[string]string) ([]byte, bool, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, false, nil
		}
		return nil, false, err
	}
	d, err := Parse(path, src)
	if err != nil {
		return nil, false, err
	}
	follow(d, m)
	if !d.Changed() {
		return nil, false, nil
	}
	out, err := d.Bytes()
	if err != nil {
		return nil, false, err
	}
	if err := CheckNoNewErrors(path, src, out, r, LintOptions{User: g.LintUser}); err != nil {
		return nil, false, err
	}
	return out, true, nil
}

// CheckNoNewErrors lints a file before and after an edit: an edit may keep
// an operator's existing problem but must not add one. The error lists what
// the edit would add.
func CheckNoNewErrors(name string, before, after []byte, r Role, opt LintOptions) error {
	a, err := Parse(name, after)
	if err != nil {
		return fmt.Errorf("%s: refusing the rewrite: %w", name, err)
	}
	old := map[string]bool{}
	if b, err := Parse(name, before); err == nil {
		for _, f := range Lint(b, r, opt) {
			if f.Severity == Error {
				old[f.Key+"\x00"+f.What] = true
			}
		}
	}
	var errs []error
	for _, f := range Lint(a, r, opt) {
		if f.Severity == Error && !old[f.Key+"\x00"+f.What] {
			errs = append(errs, fmt.Errorf("refusing to rewrite %s: it would gain %s", name, f))
		}
	}
	return errors.Join(errs...)
}

// NewRegenerator builds the Regenerator for this node from sensu-tlsd's
// config (the sensu section), handing changes on to next. It returns nil
// when sensu.manage is off: nothing should edit Sensu's files then.
func NewRegenerator(cfg *config.Config, next event.Subscriber) *Regenerator {
	if !cfg.Sensu.Manage {
		return nil
	}
	files := Files{Backend: cfg.Sensu.BackendConfig, Agent: cfg.Sensu.AgentConfig}
	if files.Backend != "" {
		files.BackendEnv = DefaultEnvFiles(Backend)
	}
	if files.Agent != "" {
		files.AgentEnv = DefaultEnvFiles(Agent)
	}
	return &Regenerator{
		Files:               files,
		BackendCertificate:  cfg.Sensu.BackendCertificate,
		EtcdPeerCertificate: cfg.Sensu.EtcdPeerCertificate,
		AgentCertificate:    cfg.Sensu.AgentCertificate,
		Commercial:          cfg.Sensu.Commercial,
		Next:                next,
	}
}
