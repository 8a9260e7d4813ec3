package regenerate

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"

	"github.com/sensu-tlsd/sensu-tlsd/config"
	"github.com/sensu-tlsd/sensu-tlsd/config/sensu"
	"github.com/sensu-tlsd/sensu-tlsd/internal/event"
)

// Regenerator is the event.Subscriber that keeps the Sensu configs
// pointing at the managed certificate files. It follows paths, it never
// turns TLS on: a key is rewritten only when the file already sets it (the
// cutover, package migrate, is what adds TLS keys). Only editing is done
// here; restarting Sensu is Next's job.
//
// Next receives every Change the regenerator accepts, after the rewrite,
// with the Sensu files that were rewritten appended to Change.Files, so a
// service subscriber keyed on Files restarts sensu-backend or sensu-agent
// exactly when their config changed. Wire it as
// bus.Subscribe(&Regenerator{..., Next: services}), not services directly,
// or the service action sees the change without the config paths.
type Regenerator struct {
	Files sensu.Files
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

// suppliers are the certificate names a table row's certificate and key,
// and its CA, follow.
func (g *Regenerator) suppliers(s sensu.Supplier) (cert, ca string) {
	switch s {
	case sensu.FromEtcdPeer:
		if g.EtcdPeerCertificate != "" {
			return g.EtcdPeerCertificate, g.EtcdPeerCertificate
		}
	case sensu.FromAgent:
		if g.AgentCertificate != "" {
			return g.AgentCertificate, g.AgentCertificate
		}
		return "", g.BackendCertificate
	}
	return g.BackendCertificate, g.BackendCertificate
}

// keyMap lists which keys of a role's files point at which part of c,
// from config/sensu's table of certificate keys.
func (g *Regenerator) keyMap(r sensu.Role, c event.Change) map[string]string {
	m := map[string]string{}
	for _, k := range sensu.CertKeysOf(r) {
		if k.CommercialOnly && !g.Commercial {
			continue
		}
		cert, ca := g.suppliers(k.From)
		if cert != "" && c.Name == cert {
			m[k.Cert], m[k.Key] = c.CertFile, c.KeyFile
		}
		if ca != "" && c.Name == ca {
			m[k.CA] = c.CAFile
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
func follow(s sensu.Settings, m map[string]string) {
	for key, path := range m {
		if cur, ok := s.Get(key); ok && cur.Scalar != "" {
			s.Set(key, sensu.Str(path))
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
		role sensu.Role
		yml  string
		env  []string
	}{{sensu.Backend, g.Files.Backend, g.Files.BackendEnv}, {sensu.Agent, g.Files.Agent, g.Files.AgentEnv}} {
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
			if errors.Is(err, fs.ErrNotExist) {
				continue // the unit skips it too (EnvironmentFile=-)
			}
			if err != nil {
				errs = append(errs, err)
				continue
			}
			e, err := sensu.ParseEnvFile(envPath, src, f.role)
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
		if _, err := sensu.WriteFile(p.path, p.data); err != nil {
			return written, fmt.Errorf("writing %s: %w", p.path, err)
		}
		written = append(written, p.path)
	}
	return written, nil
}

// rewriteYAML returns the file's new bytes, refusing a result with lint
// errors the current file does not have.
func (g *Regenerator) rewriteYAML(path string, r sensu.Role, m map[string]string) ([]byte, bool, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, false, nil
		}
		return nil, false, err
	}
	d, err := sensu.Parse(path, src)
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
	if err := sensu.CheckNoNewErrors(path, src, out, r, sensu.LintOptions{User: g.LintUser}); err != nil {
		return nil, false, err
	}
	return out, true, nil
}

// New builds the Regenerator for this node from sensu-tlsd's config (the
// sensu section), handing changes on to next. It returns nil when
// sensu.manage is off: nothing should edit Sensu's files then.
func New(cfg *config.Config, next event.Subscriber) *Regenerator {
	if !cfg.Sensu.Manage {
		return nil
	}
	files := sensu.Files{Backend: cfg.Sensu.BackendConfig, Agent: cfg.Sensu.AgentConfig}
	if files.Backend != "" {
		files.BackendEnv = sensu.EnvFilesOf(sensu.Backend, cfg.Sensu.BackendEnvFiles)
	}
	if files.Agent != "" {
		files.AgentEnv = sensu.EnvFilesOf(sensu.Agent, cfg.Sensu.AgentEnvFiles)
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
