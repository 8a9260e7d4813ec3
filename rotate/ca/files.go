package ca

import (
	"fmt"
	"os"
	"path/filepath"
)

// Paths are where WriteFiles put a certificate set.
type Paths struct {
	Cert, Key, CA string
}

// FilePaths are cfssljson's names for certificate name in dir.
func FilePaths(dir, name string) Paths {
	return Paths{
		Cert: filepath.Join(dir, name+".pem"),
		Key:  filepath.Join(dir, name+"-key.pem"),
		CA:   filepath.Join(dir, CertFileName),
	}
}

// WriteFiles writes is to dir as NAME.pem, NAME-key.pem (0600) and ca.pem,
// each replaced by rename so a reader never sees half a file.
func WriteFiles(dir, name string, is *Issued) (Paths, error) {
	p := FilePaths(dir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return p, fmt.Errorf("creating output directory: %w", err)
	}
	if err := writeFile(p.Key, is.KeyPEM, 0o600); err != nil {
		return p, err
	}
	if err := writeFile(p.Cert, is.CertPEM, 0o644); err != nil {
		return p, err
	}
	if err := writeFile(p.CA, is.CAPEM, 0o644); err != nil {
		return p, err
	}
	return p, nil
}

// writeFile writes data to path through a temporary file in the same
// directory, created with mode from the start so a key is never readable by
// others, not even for a moment.
func writeFile(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
