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
	"github.com/sensu-tlsd/sensu-tlsd/rotate"
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
	// CAFile verifies the targets (originate); "" trusts the system roots.
	CAFile string
	// ClientCAFile turns on mTLS for clients (terminate, dual).
	ClientCAFile                string
	AllowCN, AllowDNS, AllowURI []string
	AllowPlaintext              bool // dual only
	TLS13Only                   bool
	ALPN                        []string
	ServerName                  string // originate: name verified on targets
	MaxConns                    int
	IdleTimeout                 time.Duration
	HandshakeTimeout            time.Duration
	DialTimeout                 time.Duration
	AgentHeaders                bool
	// CertMayBePending lets the listener start before its certificate
	// files exist (the daemon issues them after start and announces them
	// on the bus); handshakes fail until then. Files that exist must load.
	CertMayBePending bool
}

// SpecFromConfig turns a config listener and the managed certificate it
// names into a Spec.
func SpecFromConfig(l config.Listener, cert config.Certificate) Spec {
	ca := l.TargetCA
	if ca == "" && l.Mode == "originate" {
		ca = cert.CAFile
	}
	return Spec{
		Name: l.Name, Mode: l.Mode, Listen: l.Listen, Targets: l.Targets,
		CertFile: cert.CertFile, KeyFile: cert.KeyFile, CAFile: ca,
		ClientCAFile: l.ClientCA, AllowCN: l.AllowCN, AllowDNS: l.AllowDNS, AllowURI: l.AllowURI,
		AllowPlaintext: l.AllowPlain, TLS13Only: l.TLS13Only, ALPN: l.ALPN, ServerName: l.ServerName,
		MaxConns: l.MaxConns, IdleTimeout: l.IdleTimeout, HandshakeTimeout: l.HandshakeTimeout,
		DialTimeout: l.DialTimeout, AgentHeaders: l.AgentHeaders,
	}
}

// Files are what a built listener reads from disk and follows: the
// certificate pair it serves or presents, and the CA bundle it verifies
// its peers with. Either is nil when the listener has none.
type Files struct {
	Cert *FileSource
	CA   *CAPool
}

// Watch follows the files on disk until ctx ends (the standalone proxy;
// the daemon follows its Changes instead).
func (f Files) Watch(ctx context.Context, log *slog.Logger) error {
	g, ctx := errgroup.WithContext(ctx)
	if f.Cert != nil {
		g.Go(func() error { return f.Cert.Watch(ctx) })
	}
	if f.CA != nil {
		g.Go(func() error { return f.CA.Watch(ctx, log) })
	}
	return g.Wait()
}

// CertificateChanged moves the listener onto a Change of its managed
// certificate, called name, and reloads its CA bundle when any change
// rewrote that file (a client-ca or originate CA that is a managed file).
func (f Files) CertificateChanged(ctx context.Context, name string, c rotate.Change) error {
	var errs []error
	if f.Cert != nil && c.Name == name {
		errs = append(errs, f.Cert.Subscriber(name).CertificateChanged(ctx, c))
	}
	if f.CA != nil && slices.Contains(c.Files, f.CA.Path()) {
		errs = append(errs, f.CA.Reload())
	}
	return errors.Join(errs...)
}

// Build checks spec and returns its Server and the Files it follows.
func Build(spec Spec, m *Metrics, log *slog.Logger) (*Server, Files, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("proxy listener %q: %s", spec.Name, fmt.Sprintf(format, a...))
	}
	if _, _, err := net.SplitHostPort(spec.Listen); err != nil {
		return nil, Files{}, bad("listen %q is not host:port: %v", spec.Listen, err)
	}
	if len(spec.Targets) == 0 {
		return nil, Files{}, bad("no target; give the address to forward to (host:port)")
	}
	for _, t := range spec.Targets {
		if _, _, err := net.SplitHostPort(t); err != nil {
			return nil, Files{}, bad("target %q is not host:port: %v", t, err)
		}
	}
	var src *FileSource
	if spec.CertFile != "" || spec.KeyFile != "" {
		if spec.CertFile == "" || spec.KeyFile == "" {
			return nil, Files{}, bad("cert and key go together; give both files")
		}
		var err error
		switch src, err = NewFileSource(spec.CertFile, spec.KeyFile, log); {
		case err == nil:
		case spec.CertMayBePending && missing(spec.CertFile) && missing(spec.KeyFile):
			src = newPendingFileSource(spec.CertFile, spec.KeyFile, log)
		default:
			return nil, Files{}, bad("%v", err)
		}
	}
	var ca *CAPool
	policy := Policy{TLS13Only: spec.TLS13Only, ALPN: spec.ALPN}
	dialer := net.Dialer{Timeout: spec.DialTimeout}
	var mode Mode
	switch spec.Mode {
	case "terminate", "dual":
		if src == nil {
			return nil, Files{}, bad("mode %s serves TLS and needs a certificate and key", spec.Mode)
		}
		if len(spec.Targets) != 1 {
			return nil, Files{}, bad("mode %s forwards to exactly one plaintext target, got %d", spec.Mode, len(spec.Targets))
		}
		auth, err := clientAuth(spec)
		if err != nil {
			return nil, Files{}, bad("%v", err)
		}
		if auth != nil {
			ca = auth.CAs
		}
		cfg := serverTLSConfig(policy, src, auth)
		if spec.Mode == "terminate" {
			mode = &Terminate{TLS: cfg, Target: spec.Targets[0], Dialer: dialer}
		} else {
			mode = &Dual{TLS: cfg, Target: spec.Targets[0], AllowPlaintext: spec.AllowPlaintext, Dialer: dialer}
		}
	case "originate":
		if spec.ClientCAFile != "" || len(spec.AllowCN)+len(spec.AllowDNS)+len(spec.AllowURI) > 0 {
			return nil, Files{}, bad("client-ca and allow-lists verify TLS clients; mode originate takes plaintext clients")
		}
		var certs CertSource
		if src != nil {
			certs = src
		}
		o := &Originate{TLS: clientTLSConfig(policy, nil, certs), Targets: spec.Targets, ServerName: spec.ServerName, Dialer: dialer}
		if spec.CAFile != "" {
			var err error
			if o.Roots, err = LoadCAPool(spec.CAFile); err != nil {
				return nil, Files{}, bad("ca %v", err)
			}
			ca = o.Roots
		}
		mode = o
	default:
		return nil, Files{}, bad("mode %q is unknown; use terminate, originate or dual", spec.Mode)
	}
	s, err := New(Options{
		Name: spec.Name, Mode: mode, MaxConns: spec.MaxConns,
		HandshakeTimeout: spec.HandshakeTimeout, IdleTimeout: spec.IdleTimeout, DialTimeout: spec.DialTimeout,
		AgentHeaders: spec.AgentHeaders, Metrics: m, Log: log,
	})
	return s, Files{Cert: src, CA: ca}, err
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
