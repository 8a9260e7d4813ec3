package proxy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/internal/event"
	"github.com/sensu-tlsd/sensu-tlsd/internal/pki"
	"github.com/sensu-tlsd/sensu-tlsd/internal/watch"
)

// CertSource supplies the certificate a listener presents: as a server to
// TLS clients, or as a client to TLS targets. Every handshake asks again,
// which is how a rotated certificate reaches new connections without a
// restart.
type CertSource interface {
	GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error)
	GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error)
}

// FileSource is a CertSource backed by a PEM certificate chain and key on
// disk. Every pair passes the gate sensu-tlsd installs through (pki.Admit:
// key match, CA:FALSE leaf, a chain that holds only what reaches the
// anchor, usages, validity, key strength, and the chain to Gate.CAFile when
// one is set) before it is served. It keeps the last pair that passed; a
// pair that fails (a key written before its certificate, a self-signed
// certificate moved over the file) never replaces it.
type FileSource struct {
	mu       sync.Mutex // serialises loads and path changes
	certFile string
	keyFile  string
	gate     Gate
	sum      [3][sha256.Size]byte // of the files current was loaded from
	current  atomic.Pointer[tls.Certificate]
	log      *slog.Logger
}

// Gate is what a FileSource's certificate must be: for Use (pki.Server
// for a certificate served to TLS clients, pki.Client for the one
// originate presents to its targets), and chained to the CA bundle in
// CAFile when it is not "".
type Gate struct {
	Use    pki.Profile
	CAFile string
}

// NewFileSource loads certFile and keyFile and fails when they do not
// form a pair that passes gate.
func NewFileSource(certFile, keyFile string, gate Gate, log *slog.Logger) (*FileSource, error) {
	if log == nil {
		log = slog.Default()
	}
	s := &FileSource{gate: gate, log: log}
	if err := s.Load(certFile, keyFile); err != nil {
		return nil, err
	}
	return s, nil
}

// Load reads a new pair, from now on watched under these paths.
func (s *FileSource) Load(certFile, keyFile string) error {
	_, err := s.load(certFile, keyFile)
	return err
}

// pairFix is what to do about a certificate and key that do not load.
const pairFix = "give the PEM certificate chain (leaf first) as the certificate and, as the key, " +
	"the PEM private key it was issued for (a key from another issuance does not match)"

// load reads the pair and reports whether it differs from the one served;
// files whose bytes did not change are not parsed again.
func (s *FileSource) load(certFile, keyFile string) (changed bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	certPEM, err := pki.ReadFileLimited(certFile, pki.MaxPEMFileBytes, "a PEM certificate chain")
	if err != nil {
		return false, readError("certificate", err, "the PEM certificate chain")
	}
	keyPEM, err := pki.ReadFileLimited(keyFile, pki.MaxKeyFileBytes, "a PEM private key")
	if err != nil {
		return false, readError("key", err, "the PEM private key of "+certFile)
	}
	var caPEM []byte
	if s.gate.CAFile != "" {
		if caPEM, err = pki.ReadFileLimited(s.gate.CAFile, pki.MaxPEMFileBytes, "a PEM CA bundle"); err != nil {
			return false, readError("the CA bundle the certificate must chain to", err, "the PEM file of the CA that signed "+certFile)
		}
	}
	sum := [3][sha256.Size]byte{sha256.Sum256(certPEM), sha256.Sum256(keyPEM), sha256.Sum256(caPEM)}
	if s.current.Load() != nil && sum == s.sum && certFile == s.certFile && keyFile == s.keyFile {
		return false, nil
	}
	pair, err := s.admit(certFile, keyFile, certPEM, keyPEM, caPEM)
	if err != nil {
		return false, err
	}
	s.certFile, s.keyFile, s.sum = certFile, keyFile, sum
	s.current.Store(pair)
	return true, nil
}

// admit parses the pair and runs it through the gate.
func (s *FileSource) admit(certFile, keyFile string, certPEM, keyPEM, caPEM []byte) (*tls.Certificate, error) {
	set := &pki.Set{CertFile: certFile, KeyFile: keyFile, CAFile: s.gate.CAFile}
	var err error
	if set.Chain, err = pki.ParseCertificatesPEM(certPEM); err != nil {
		return nil, fmt.Errorf("%s: %w; %s", certFile, err, pairFix)
	}
	if set.Key, err = pki.ParsePrivateKeyPEM(keyPEM); err != nil {
		return nil, fmt.Errorf("%s: %w; %s", keyFile, err, pairFix)
	}
	if caPEM != nil {
		if set.CA, err = pki.ParseCertificatesPEM(caPEM); err != nil {
			return nil, fmt.Errorf("%s: %w", s.gate.CAFile, err)
		}
	}
	if err := pki.Admit(set, pki.Policy{Profile: s.gate.Use}); err != nil {
		return nil, err
	}
	pair := &tls.Certificate{PrivateKey: set.Key, Leaf: set.Leaf()}
	for _, c := range set.Chain {
		pair.Certificate = append(pair.Certificate, c.Raw)
	}
	if ca := anchorToAdd(set); ca != nil {
		pair.Certificate = append(pair.Certificate, ca.Raw)
	}
	return pair, nil
}

// anchorToAdd is the CA of Gate.CAFile that signed the chain's last
// certificate, when the chain does not end with it already. It is served
// after the chain so that an agent node that pinned its SHA-256 can take
// it from the handshake (agent-cutover); a client that verifies against
// its own roots ignores it (RFC 8446 4.4.2).
func anchorToAdd(set *pki.Set) *x509.Certificate {
	last := set.Chain[len(set.Chain)-1]
	if bytes.Equal(last.RawSubject, last.RawIssuer) && last.CheckSignatureFrom(last) == nil {
		return nil
	}
	for _, ca := range set.CA {
		if bytes.Equal(last.RawIssuer, ca.RawSubject) && last.CheckSignatureFrom(ca) == nil {
			return ca
		}
	}
	return nil
}

// reload re-reads the current paths.
func (s *FileSource) reload() (bool, error) {
	s.mu.Lock()
	certFile, keyFile := s.certFile, s.keyFile
	s.mu.Unlock()
	return s.load(certFile, keyFile)
}

// newPendingFileSource is a FileSource for files not issued yet: its
// handshakes fail until a load succeeds (the daemon's first issuance
// publishes a Change that does).
func newPendingFileSource(certFile, keyFile string, gate Gate, log *slog.Logger) *FileSource {
	if log == nil {
		log = slog.Default()
	}
	return &FileSource{certFile: certFile, keyFile: keyFile, gate: gate, log: log}
}

// Certificate is the pair served now, nil while pending.
func (s *FileSource) Certificate() *tls.Certificate { return s.current.Load() }

// servedSerial is the serial of the pair served, as openssl prints it; ""
// while pending.
func (s *FileSource) servedSerial() string {
	if c := s.current.Load(); c != nil {
		return pki.SerialHex(c.Leaf)
	}
	return ""
}

// errNoCertificateYet fails handshakes on a listener whose certificate has
// not been issued yet.
var errNoCertificateYet = errors.New("proxy: certificate not issued yet")

// GetCertificate implements CertSource.
func (s *FileSource) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if c := s.current.Load(); c != nil {
		return c, nil
	}
	return nil, errNoCertificateYet
}

// GetClientCertificate implements CertSource. While pending it presents
// no certificate, which a target requiring one refuses.
func (s *FileSource) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	if c := s.current.Load(); c != nil {
		return c, nil
	}
	return &tls.Certificate{}, nil
}

// reloadDebounce lets an installer finish writing both files (or renaming
// both into place) before the pair is read.
const reloadDebounce = 150 * time.Millisecond

// Watch reloads the pair whenever the certificate or key file changes,
// until ctx ends.
func (s *FileSource) Watch(ctx context.Context) error {
	s.mu.Lock()
	paths := []string{s.certFile, s.keyFile}
	s.mu.Unlock()
	return watchFiles(ctx, paths, func() {
		changed, err := s.reload()
		switch {
		case err != nil:
			s.log.Warn("certificate files changed but were refused; still serving the previous pair",
				"cert", paths[0], "key", paths[1], "serial", s.servedSerial(), "err", err)
		case changed:
			s.log.Info("certificate reloaded", "cert", paths[0], "serial", s.servedSerial())
		}
	}, s.log)
}

// watchFiles calls reload, debounced, whenever one of paths changes,
// until ctx ends. internal/watch follows the directory entries, not the
// inodes (installers replace files by rename), and for a symlinked path
// also the links on the way (a Kubernetes secret's ..data swap); other
// files in the same directories, such as the proxy's own log, are
// ignored. After each change the watch moves to where the links point now.
func watchFiles(ctx context.Context, paths []string, reload func(), log *slog.Logger) error {
	const name = "files"
	w, err := watch.New(reloadDebounce)
	if err != nil {
		return fmt.Errorf("watching %s: %w", strings.Join(paths, ", "), err)
	}
	if err := w.Set(name, paths); err != nil {
		return fmt.Errorf("watching %s: %w", strings.Join(paths, ", "), err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	for {
		select {
		case err := <-done:
			if err != nil {
				return fmt.Errorf("watching %s: %w", strings.Join(paths, ", "), err)
			}
			return nil
		case <-w.Changes():
			reload()
			if err := w.Set(name, paths); err != nil {
				log.Warn("following the moved certificate files failed; later changes may be missed", "files", paths, "err", err)
			}
		}
	}
}

// Subscriber returns the event.Subscriber that moves this source onto the
// files of every Change for the managed certificate name.
func (s *FileSource) Subscriber(name string) event.Subscriber {
	return event.SubscriberFunc(func(_ context.Context, c event.Change) error {
		if c.Name != name {
			return nil
		}
		if c.CertFile == "" || c.KeyFile == "" {
			return errors.New("proxy: change for " + name + " names no cert-file/key-file")
		}
		return s.Load(c.CertFile, c.KeyFile)
	})
}
