package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/sensu-tlsd/sensu-tlsd/rotate"
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
	s.mu.Lock()
	defer s.mu.Unlock()
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return fmt.Errorf("loading certificate %s with key %s: %w", certFile, keyFile, err)
	}
	s.certFile, s.keyFile = certFile, keyFile
	s.current.Store(&pair)
	return nil
}

// Reload re-reads the current paths.
func (s *FileSource) Reload() error {
	s.mu.Lock()
	certFile, keyFile := s.certFile, s.keyFile
	s.mu.Unlock()
	return s.Load(certFile, keyFile)
}

// newPendingFileSource is a FileSource for files not issued yet: its
// handshakes fail until Load or Reload succeeds (the daemon's first
// issuance publishes a Change that does).
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

// Watch reloads the pair whenever a file in the certificate's or key's
// directory changes, until ctx ends.
func (s *FileSource) Watch(ctx context.Context) error {
	s.mu.Lock()
	paths := []string{s.certFile, s.keyFile}
	s.mu.Unlock()
	return watchDirs(ctx, paths, func() {
		if err := s.Reload(); err != nil {
			s.log.Warn("certificate files changed but did not load; still serving the previous pair", "err", err)
			return
		}
		s.log.Info("certificate reloaded", "cert", s.certFile, "serial", s.Certificate().Leaf.SerialNumber.Text(16))
	}, s.log)
}

// watchDirs calls reload, debounced, whenever a file in the directory of
// one of paths changes, until ctx ends. It watches the parent
// directories, not the files, because installers replace files by
// rename, which a watch on the old inode would miss.
func watchDirs(ctx context.Context, paths []string, reload func(), log *slog.Logger) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watching certificate files: %w", err)
	}
	defer w.Close()
	for _, p := range paths {
		d := filepath.Dir(p)
		if err := w.Add(d); err != nil {
			return fmt.Errorf("watching directory %s: %w", d, err)
		}
	}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if ev.Op == fsnotify.Chmod {
				continue
			}
			timer.Reset(reloadDebounce)
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			log.Warn("certificate watch error", "err", err)
		case <-timer.C:
			reload()
		}
	}
}

// Subscriber returns the rotate.Subscriber that moves this source onto the
// files of every Change for the managed certificate name.
func (s *FileSource) Subscriber(name string) rotate.Subscriber {
	return rotate.SubscriberFunc(func(_ context.Context, c rotate.Change) error {
		if c.Name != name {
			return nil
		}
		if c.CertFile == "" || c.KeyFile == "" {
			return errors.New("proxy: change for " + name + " names no cert-file/key-file")
		}
		return s.Load(c.CertFile, c.KeyFile)
	})
}
