package ca

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"

	"github.com/sensu-tlsd/sensu-tlsd/internal/atomicfile"
)

// Paths are where a certificate set is written.
type Paths struct {
	Cert, Key, CA string
}

// WriteFiles writes is to dir as cfssljson names them: NAME.pem,
// NAME-key.pem (0600) and ca.pem, each replaced by rename so a reader
// never sees half a file.
func WriteFiles(dir, name string, is *Issued) (Paths, error) {
	p := Paths{
		Cert: filepath.Join(dir, name+".pem"),
		Key:  filepath.Join(dir, name+"-key.pem"),
		CA:   filepath.Join(dir, CertFileName),
	}
	if err := checkNotAnotherCA(p.CA, is.CAPEM); err != nil {
		return p, err
	}
	for _, f := range []struct {
		path string
		data []byte
		mode os.FileMode
	}{{p.Key, is.KeyPEM, 0o600}, {p.Cert, is.CertPEM, 0o644}, {p.CA, is.CAPEM, 0o644}} {
		if err := os.MkdirAll(filepath.Dir(f.path), 0o755); err != nil {
			return p, fmt.Errorf("creating directory for %s: %w", f.path, err)
		}
		if err := writeFile(f.path, f.data, f.mode); err != nil {
			return p, err
		}
	}
	return p, nil
}

// writeFile replaces path, given its mode before any byte is written, so
// a key is never readable by others, not even for a moment.
func writeFile(path string, data []byte, mode os.FileMode) error {
	return atomicfile.Write(path, data, atomicfile.Mode(mode))
}

// checkNotAnotherCA refuses to overwrite the certificate of a different CA:
// a ca.pem with ca-key.pem beside it is a CA's own file, and replacing it
// would orphan that CA's key and every certificate it issued.
func checkNotAnotherCA(caPath string, caPEM []byte) error {
	old, err := os.ReadFile(caPath)
	if err != nil || bytes.Equal(old, caPEM) {
		return nil
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(caPath), KeyFileName)); err != nil {
		return nil
	}
	return fmt.Errorf("%s belongs to the CA in %s (%s is beside it) and differs from the CA signing this certificate: write to another directory (--out) or use that CA (--ca-dir %s)",
		caPath, filepath.Dir(caPath), KeyFileName, filepath.Dir(caPath))
}
