package proxy

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/internal/event"
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
// disk. It keeps the last pair that loaded; a pair that fails to load (for
// example a key written before its certificate) never replaces it.
type FileSource struct {
	mu       sync.Mutex // serialises loads and path changes
	certFile string
	keyFile  string
	sum      [2][sha256.Size]byte // of the files current was loaded from
	current  atomic.Pointer[tls.Certificate]
	log      *slog.Logger
}

// NewFileSource loads certFile and keyFile and fails when they do not
// form a valid pair.
func NewFileSource(certFile, keyFile string, log *slog.Logger) (*FileSource, error) {
	if log == nil {
		log = slog.Default()
	}
	s := &FileSource{log: log}
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
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return false, fmt.Errorf("reading certificate: %w; %s", err, fileFix(err, "the PEM certificate chain"))
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return false, fmt.Errorf("reading key: %w; %s", err, fileFix(err, "the PEM private key of "+certFile))
	}
	sum := [2][sha256.Size]byte{sha256.Sum256(certPEM), sha256.Sum256(keyPEM)}
	if s.current.Load() != nil && sum == s.sum && certFile == s.certFile && keyFile == s.keyFile {
		return false, nil
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return false, fmt.Errorf("loading certificate %s with key %s: %w; %s", certFile, keyFile, err, pairFix)
	}
	s.certFile, s.keyFile, s.sum = certFile, keyFile, sum
	s.current.Store(&pair)
	return true, nil
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
func newPendingFileSource(certFile, keyFile string, log *slog.Logger) *FileSource {
	if log == nil {
		log = slog.Default()
	}
	return &FileSource{certFile: certFile, keyFile: keyFile, log: log}
}

// Certificate is the pair served now, nil while pending.
func (s *FileSource) Certificate() *tls.Certificate { return s.current.Load() }

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
			s.log.Warn("certificate files changed but did not load; still serving the previous pair", "err", err)
		case changed:
			s.log.Info("certificate reloaded", "cert", paths[0], "serial", s.Certificate().Leaf.SerialNumber.Text(16))
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
