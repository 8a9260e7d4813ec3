package proxy

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"slices"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/sensu-tlsd/sensu-tlsd/config"
	"github.com/sensu-tlsd/sensu-tlsd/internal/event"
	"github.com/sensu-tlsd/sensu-tlsd/internal/pki"
)

// Spec describes a listener the way an operator does: with file paths and
// names. The daemon builds one from each config.Listener, the standalone
// `sensu-tlsd proxy` command from its flags.
type Spec struct {
	Name    string
	Mode    string // terminate, originate or dual
	Listen  string
	Targets []string
	// CertFile and KeyFile are served to clients (terminate, dual) or
	// presented to targets (originate, optional).
	CertFile, KeyFile string
	// CertCAFile is the CA bundle CertFile must chain to; "" checks the
	// certificate without one (see Gate).
	CertCAFile string
	// CAFile verifies the targets (originate, or terminate/dual with
	// TargetTLS); "" trusts the system roots.
	CAFile string
	// TargetTLS makes terminate and dual speak TLS to their target too,
	// verified with CAFile and ServerName: a backend that serves TLS on
	// the loopback port behind a listener that reads the agents' requests.
	TargetTLS bool
	// ClientCAFile turns on mTLS for clients (terminate, dual).
	ClientCAFile                string
	AllowCN, AllowDNS, AllowURI []string
	AllowPlaintext              bool // dual only
	TLS13Only                   bool
	ALPN                        []string
	ServerName                  string // originate: name verified on targets
	TargetOrder                 string // originate: in-order (default) or spread
	MaxConns                    int
	IdleTimeout                 time.Duration
	HandshakeTimeout            time.Duration
	DialTimeout                 time.Duration
	AgentHeaders                bool
	// AgentIdentity binds client certificates to agent names: "" (off),
	// cn or uri (see AgentIdentity). Terminate and dual, with client-ca.
	AgentIdentity string
	// DenyFile lists certificate serials and agents refused (see
	// DenyList); watched and read again on reload.
	DenyFile string
	// CertMayBePending lets the listener start before its certificate
	// files exist or pass the gate (the daemon issues or replaces them
	// after start and announces them on the bus); handshakes fail until
	// then. Files that exist must be readable.
	CertMayBePending bool
}

// SpecFromConfig turns a config listener and the managed certificate it
// names into a Spec.
func SpecFromConfig(l config.Listener, cert config.Certificate) Spec {
	ca := l.TargetCA
	if ca == "" && (l.Mode == "originate" || l.TargetTLS) {
		ca = cert.CAFile
	}
	return Spec{
		Name: l.Name, Mode: l.Mode, Listen: l.Listen, Targets: l.Targets,
		CertFile: cert.CertFile, KeyFile: cert.KeyFile, CertCAFile: cert.CAFile, CAFile: ca,
		ClientCAFile: l.ClientCA, AllowCN: l.AllowCN, AllowDNS: l.AllowDNS, AllowURI: l.AllowURI,
		AllowPlaintext: l.AllowPlain, TLS13Only: l.TLS13Only, ALPN: l.ALPN, ServerName: l.ServerName,
		MaxConns: l.MaxConns, IdleTimeout: l.IdleTimeout, HandshakeTimeout: l.HandshakeTimeout,
		DialTimeout: l.DialTimeout, AgentHeaders: l.AgentHeaders, TargetOrder: l.TargetOrder,
		AgentIdentity: l.AgentIdentity, DenyFile: l.DenyFile, TargetTLS: l.TargetTLS,
	}
}

// Files are what a built listener reads from disk and follows: the
// certificate pair it serves or presents, and the CA bundle it verifies
// its peers with. Either is nil when the listener has none.
type Files struct {
	Cert *FileSource
	CA   *CAPool
	// TargetCA verifies the TLS target of a terminate or dual listener
	// with target-tls, beside the client CA in CA.
	TargetCA *CAPool
}

// Watch follows the files on disk until ctx ends (the standalone proxy;
// the daemon follows its Changes instead).
func (f Files) Watch(ctx context.Context, log *slog.Logger) error {
	g, ctx := errgroup.WithContext(ctx)
	if f.Cert != nil {
		g.Go(func() error { return f.Cert.Watch(ctx) })
	}
	for _, ca := range []*CAPool{f.CA, f.TargetCA} {
		if ca != nil {
			g.Go(func() error { return ca.Watch(ctx, log) })
		}
	}
	return g.Wait()
}

// CertificateChanged moves the listener onto a Change of its managed
// certificate, called name, and reloads its CA bundle when any change
// rewrote that file (a client-ca or originate CA that is a managed file).
func (f Files) CertificateChanged(ctx context.Context, name string, c event.Change) error {
	var errs []error
	if f.Cert != nil && c.Name == name {
		errs = append(errs, f.Cert.Subscriber(name).CertificateChanged(ctx, c))
	}
	for _, ca := range []*CAPool{f.CA, f.TargetCA} {
		if ca != nil && slices.Contains(c.Files, ca.Path()) {
			errs = append(errs, ca.Reload())
		}
	}
	return errors.Join(errs...)
}

// Build checks spec and returns its Server and the Files it follows.
func Build(spec Spec, m *Metrics, log *slog.Logger) (*Server, Files, error) {
	opt, files, err := buildOptions(spec, m, log)
	if err != nil {
		return nil, Files{}, err
	}
	s, err := New(opt)
	return s, files, err
}

// buildOptions checks spec and returns the Options of its Server. A
// setting that does nothing in spec's mode is an error naming the one
// that does, so a mistyped flag never quietly weakens a listener.
func buildOptions(spec Spec, m *Metrics, log *slog.Logger) (Options, Files, error) {
	bad := func(format string, a ...any) (Options, Files, error) {
		return Options{}, Files{}, fmt.Errorf("proxy listener %q: %s", spec.Name, fmt.Sprintf(format, a...))
	}
	if _, _, err := net.SplitHostPort(spec.Listen); err != nil {
		return bad("listen %q is not host:port: %v", spec.Listen, err)
	}
	if len(spec.Targets) == 0 {
		return bad("no target; give the address to forward to (host:port)")
	}
	for _, t := range spec.Targets {
		if _, _, err := net.SplitHostPort(t); err != nil {
			return bad("target %q is not host:port: %v", t, err)
		}
	}
	switch spec.Mode {
	case "terminate", "dual":
		switch {
		case spec.CAFile != "" && !spec.TargetTLS:
			return bad("--ca (config key target-ca) verifies the TLS targets of mode originate; mode %s sends plaintext to its target. "+
				"To require client certificates, give --client-ca (config key client-ca) instead", spec.Mode)
		case spec.ServerName != "" && !spec.TargetTLS:
			return bad("--server-name (config key server-name) is the name mode originate verifies on its targets; mode %s serves its own "+
				"certificate, and clients verify the names in it (the certificate's hosts). Remove server-name", spec.Mode)
		case spec.TargetOrder != "":
			return bad("--target-order (config key target-order) orders the targets of mode originate; mode %s has exactly one target. Remove target-order", spec.Mode)
		case spec.AllowPlaintext && spec.Mode == "terminate":
			return bad("--allow-plaintext (config key allow-plaintext) applies to mode dual only; mode terminate accepts TLS only. " +
				"To take plaintext and TLS clients on one port, use mode dual")
		}
	case "originate":
		switch {
		case spec.TargetTLS:
			return bad("target-tls applies to modes terminate and dual; mode originate always speaks TLS to its targets. Remove target-tls")
		case spec.AgentIdentity != "" || spec.DenyFile != "":
			return bad("agent-identity and deny-file check the TLS clients of mode terminate or dual; mode originate takes plaintext clients. " +
				"Bind agents on the listener in front of the backend's agent port")
		case spec.AllowPlaintext:
			return bad("--allow-plaintext (config key allow-plaintext) applies to mode dual only; mode originate always takes plaintext clients. Remove allow-plaintext")
		case spec.ClientCAFile != "" || len(spec.AllowCN)+len(spec.AllowDNS)+len(spec.AllowURI) > 0:
			return bad("client-ca and allow-lists verify TLS clients; mode originate takes plaintext clients. " +
				"To verify the targets, give --ca (config key target-ca)")
		case spec.TargetOrder != "" && spec.TargetOrder != OrderInOrder && spec.TargetOrder != OrderSpread:
			return bad("--target-order (config key target-order) %q is unknown; use %s (the first target is preferred) or %s (connections take the targets in turn)",
				spec.TargetOrder, OrderInOrder, OrderSpread)
		}
	default:
		return bad("mode %q is unknown; use terminate, originate or dual", spec.Mode)
	}
	var src *FileSource
	if spec.CertFile != "" || spec.KeyFile != "" {
		if spec.CertFile == "" || spec.KeyFile == "" {
			return bad("cert and key go together; give both files")
		}
		gate := Gate{Use: pki.Server, CAFile: spec.CertCAFile}
		if spec.Mode == "originate" {
			gate.Use = pki.Client
		}
		var err error
		switch src, err = NewFileSource(spec.CertFile, spec.KeyFile, gate, log); {
		case err == nil:
		case spec.CertMayBePending && missing(spec.CertFile) && missing(spec.KeyFile):
			src = newPendingFileSource(spec.CertFile, spec.KeyFile, gate, log)
		case spec.CertMayBePending && errors.As(err, new(*pki.ValidationError)):
			// The daemon replaces a set its gate refuses and announces
			// the new one; until then nothing is served.
			src = newPendingFileSource(spec.CertFile, spec.KeyFile, gate, log)
			src.log.Warn("the certificate on disk is refused; the listener fails handshakes until the daemon installs a valid set",
				"listener", spec.Name, "cert", spec.CertFile, "err", err)
		default:
			return bad("%v", err)
		}
	}
	var ca, targetCA *CAPool
	var deny *DenyList
	var identity AgentIdentity
	policy := Policy{TLS13Only: spec.TLS13Only, ALPN: spec.ALPN}
	var mode Mode
	switch spec.Mode {
	case "terminate", "dual":
		if src == nil {
			return bad("mode %s serves TLS and needs a certificate and key", spec.Mode)
		}
		if len(spec.Targets) != 1 {
			return bad("mode %s forwards to exactly one plaintext target, got %d", spec.Mode, len(spec.Targets))
		}
		auth, err := clientAuth(spec)
		if err != nil {
			return bad("%v", err)
		}
		if auth != nil {
			ca = auth.CAs
		}
		if identity, err = agentBinding(spec, auth); err != nil {
			return bad("%v", err)
		}
		if spec.DenyFile != "" {
			if auth == nil && !spec.AgentHeaders && identity == IdentityNone {
				return bad("deny-file refuses certificate serials (needs client-ca) and agent names (needs agent-headers or agent-identity); set client-ca and agent-identity")
			}
			if deny, err = LoadDenyList(spec.DenyFile); err != nil {
				return bad("%v", err)
			}
		}
		cfg := serverTLSConfig(policy, src, auth)
		var upstream *Originate
		if spec.TargetTLS {
			upstream = &Originate{TLS: clientTLSConfig(Policy{TLS13Only: spec.TLS13Only}, nil, nil), Targets: spec.Targets, ServerName: spec.ServerName}
			if spec.CAFile != "" {
				if upstream.Roots, err = LoadCAPool(spec.CAFile); err != nil {
					return bad("target-ca %v", err)
				}
				targetCA = upstream.Roots
			}
		}
		if spec.Mode == "terminate" {
			mode = &Terminate{TLS: cfg, Auth: auth, Target: spec.Targets[0], Upstream: upstream}
		} else {
			mode = &Dual{TLS: cfg, Auth: auth, Target: spec.Targets[0], AllowPlaintext: spec.AllowPlaintext, Upstream: upstream}
		}
	case "originate":
		var certs CertSource
		if src != nil {
			certs = src
		}
		o := &Originate{TLS: clientTLSConfig(policy, nil, certs), Targets: spec.Targets, ServerName: spec.ServerName,
			Spread: spec.TargetOrder == OrderSpread}
		if spec.CAFile != "" {
			var err error
			if o.Roots, err = LoadCAPool(spec.CAFile); err != nil {
				return bad("ca %v", err)
			}
			ca = o.Roots
		}
		mode = o
	}
	return Options{
		Name: spec.Name, Mode: mode, MaxConns: spec.MaxConns,
		HandshakeTimeout: spec.HandshakeTimeout, IdleTimeout: spec.IdleTimeout, DialTimeout: spec.DialTimeout,
		AgentHeaders: spec.AgentHeaders, Identity: identity, Deny: deny, Metrics: m, Log: log,
	}, Files{Cert: src, CA: ca, TargetCA: targetCA}, nil
}

// agentBinding checks spec's agent-identity: it needs the client CA that
// makes the certificates worth binding, and leaves no room for plaintext.
// A binding listener lets a client without a certificate finish the
// handshake, so it can be told why in a 403.
func agentBinding(spec Spec, auth *ClientAuth) (AgentIdentity, error) {
	id, err := ParseAgentIdentity(spec.AgentIdentity)
	if err != nil || id == IdentityNone {
		return id, err
	}
	switch {
	case auth == nil:
		return "", fmt.Errorf("agent-identity %s binds client certificates, so it needs client-ca, the CA that verifies them", id)
	case spec.AllowPlaintext:
		return "", fmt.Errorf("agent-identity %s refuses every client without a certificate, plaintext included; remove allow-plaintext", id)
	}
	auth.CertOptional = true
	return id, nil
}

func clientAuth(spec Spec) (*ClientAuth, error) {
	allow := AllowList{CN: spec.AllowCN, DNS: spec.AllowDNS, URI: spec.AllowURI}
	if spec.ClientCAFile == "" {
		if !allow.empty() {
			return nil, fmt.Errorf("allow-cn/allow-dns/allow-uri need client-ca, the CA that verifies client certificates")
		}
		return nil, nil
	}
	pool, err := LoadCAPool(spec.ClientCAFile)
	if err != nil {
		return nil, fmt.Errorf("client-ca %v", err)
	}
	return &ClientAuth{CAs: pool, Allow: allow}, nil
}

func missing(path string) bool {
	_, err := os.Stat(path)
	return errors.Is(err, fs.ErrNotExist)
}
