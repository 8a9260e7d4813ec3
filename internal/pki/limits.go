package pki

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// Size limits. A file is read only up to its limit, so a runaway bundle (a
// leaf followed by 100,000 CA copies is 107 MB) costs no more than that.
const (
	// MaxPEMFileBytes bounds every certificate or CA bundle file read: the
	// system trust store (about 220 kB) fits with room to spare.
	MaxPEMFileBytes = 1 << 20
	// MaxKeyFileBytes bounds a private key file: an RSA 4096 key is 3.3 kB.
	MaxKeyFileBytes = 64 << 10
	// MaxConfigFileBytes bounds a config file (sensu-tlsd's or Sensu's).
	MaxConfigFileBytes = 1 << 20
	// MaxChainCertificates and MaxChainBytes bound the chain a service
	// sends in its handshake: Go peers (Sensu's agents, backends and
	// sensuctl) refuse a handshake message over 64 KiB, and OpenSSL
	// clients one over 100 kB ("excessive message size").
	MaxChainCertificates = 10
	MaxChainBytes        = 64 << 10
)

// ErrTooLarge is what a file over its read limit fails with (errors.Is).
var ErrTooLarge = errors.New("file over its size limit")

// ReadFileLimited reads path, refusing a file larger than limit bytes with
// an error naming the file and the limit; what says what the file should
// hold ("a certificate chain"). Missing and unreadable files get the same
// errors as every pki reader.
func ReadFileLimited(path string, limit int64, what string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, openError(path, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, &FileError{path, err}
	}
	if int64(len(data)) > limit {
		return nil, &FileError{path, explained{fmt.Sprintf("file is larger than %s, the limit for %s: give the file that holds only that", sizeName(limit), what), ErrTooLarge}}
	}
	return data, nil
}

// openError explains a file that cannot be opened, keeping the cause for
// errors.Is (fs.ErrNotExist, fs.ErrPermission).
func openError(path string, err error) error {
	switch {
	case errors.Is(err, os.ErrNotExist):
		return &FileError{path, explained{"file does not exist", err}}
	case errors.Is(err, os.ErrPermission):
		return &FileError{path, explained{"permission denied: run as a user that may read it (root or the sensu group)", err}}
	}
	return &FileError{path, err}
}

// explained is an error shown as msg that still unwraps to its cause.
type explained struct {
	msg   string
	cause error
}

func (e explained) Error() string { return e.msg }
func (e explained) Unwrap() error { return e.cause }

// sizeName prints a limit the way people say it: "64 KiB", "1 MiB".
func sizeName(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// handshakeBytes is the size of the TLS 1.3 Certificate message that
// carries chain: per certificate a 3-byte length and 2 bytes of (empty)
// extensions, and 4 bytes of context and list length (TLS 1.2 needs less).
func handshakeBytes(chain []*x509.Certificate) int {
	n := 4
	for _, c := range chain {
		n += len(c.Raw) + 5
	}
	return n
}

// checkServedChain refuses a chain a peer could not take or should not be
// sent: each certificate after the leaf must be the one that signed the
// certificate before it (what RFC 5246 requires and what reaches the trust
// anchor), nothing follows a self-signed root, and the whole fits in one
// handshake message. A CA bundle appended to the leaf fails here.
func checkServedChain(s *Set) error {
	chain := s.Chain
	if len(chain) > MaxChainCertificates {
		return fmt.Errorf("%s holds %d certificates, over the limit of %d for a chain a service sends: keep the leaf and the intermediates that lead to the CA, and put CA bundles in the ca-file", s.CertFile, len(chain), MaxChainCertificates)
	}
	if n := handshakeBytes(chain); n > MaxChainBytes {
		return fmt.Errorf("the chain in %s takes %d bytes in the handshake, over the limit of %s that Go peers accept: keep the leaf and the intermediates that lead to the CA, and put CA bundles in the ca-file", s.CertFile, n, sizeName(MaxChainBytes))
	}
	for i := 1; i < len(chain); i++ {
		prev, c := chain[i-1], chain[i]
		if i > 1 && prev.CheckSignatureFrom(prev) == nil {
			return fmt.Errorf("certificate %d of %s (CN %q) follows the self-signed root %q, so the chain does not need it: keep the leaf and the intermediates that lead to the CA, and put CA bundles in the ca-file", i+1, s.CertFile, c.Subject.CommonName, prev.Subject.CommonName)
		}
		if prev.CheckSignatureFrom(c) != nil {
			return fmt.Errorf("certificate %d of %s (CN %q) did not sign certificate %d (CN %q, issued by %q), so the chain does not need it: keep the leaf first, then each certificate's issuer in turn, and put CA bundles in the ca-file", i+1, s.CertFile, c.Subject.CommonName, i, prev.Subject.CommonName, prev.Issuer.CommonName)
		}
	}
	return nil
}

// CheckBundle is the gate for a CA bundle a process verifies peers with
// (a proxy's client-ca or target CA): at least one of its certificates is
// valid at now, and none has a key below the minimum strength.
func CheckBundle(cas []*x509.Certificate, file string, now time.Time) error {
	valid := false
	for _, c := range cas {
		if err := checkStrength(c.PublicKey); err != nil {
			return fmt.Errorf("%s: the CA %q: %v", file, c.Subject.CommonName, err)
		}
		valid = valid || !now.Before(c.NotBefore) && !now.After(c.NotAfter)
	}
	if !valid {
		return fmt.Errorf("%s: no certificate in it is valid now (%s), so it verifies no peer: give the bundle of the CA that signs the peers' certificates today", file, CANames(cas))
	}
	return nil
}
