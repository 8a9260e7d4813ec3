package ca

import (
	"bytes"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"

	"github.com/sensu-tlsd/sensu-tlsd/rotate/pki"
)

// Paths are where a certificate set is written.
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

// FileOptions set modes and ownership of written files. Zero modes mean key
// 0600 and certificates 0644; empty Owner/Group leave ownership alone.
type FileOptions struct {
	KeyMode, CertMode os.FileMode
	Owner, Group      string
}

// WriteFiles writes is to dir as NAME.pem, NAME-key.pem (0600) and ca.pem.
func WriteFiles(dir, name string, is *Issued) (Paths, error) {
	p := FilePaths(dir, name)
	return p, WritePaths(p, is, FileOptions{})
}

// WritePaths writes is to p, each file replaced by rename so a reader never
// sees half a file, with the modes and ownership of o.
func WritePaths(p Paths, is *Issued, o FileOptions) error {
	if o.KeyMode == 0 {
		o.KeyMode = 0o600
	}
	if o.CertMode == 0 {
		o.CertMode = 0o644
	}
	if err := pki.CheckKeyMode(o.KeyMode); err != nil {
		return fmt.Errorf("%s: not written: %w", p.Key, err)
	}
	if err := checkNotAnotherCA(p.CA, is.CAPEM); err != nil {
		return err
	}
	uid, gid, err := lookupOwner(o.Owner, o.Group)
	if err != nil {
		return err
	}
	for _, f := range []struct {
		path string
		data []byte
		mode os.FileMode
	}{{p.Key, is.KeyPEM, o.KeyMode}, {p.Cert, is.CertPEM, o.CertMode}, {p.CA, is.CAPEM, o.CertMode}} {
		if err := os.MkdirAll(filepath.Dir(f.path), 0o755); err != nil {
			return fmt.Errorf("creating directory for %s: %w", f.path, err)
		}
		if err := writeFile(f.path, f.data, f.mode, uid, gid); err != nil {
			return err
		}
	}
	return nil
}

// lookupOwner resolves user and group names (or numeric ids) to ids; -1
// leaves that id unchanged.
func lookupOwner(owner, group string) (uid, gid int, err error) {
	uid, gid = -1, -1
	if owner != "" {
		if uid, err = strconv.Atoi(owner); err != nil {
			u, lerr := user.Lookup(owner)
			if lerr != nil {
				return 0, 0, fmt.Errorf("owner %q: no such user: create it or fix the owner key", owner)
			}
			uid, _ = strconv.Atoi(u.Uid)
		}
	}
	if group != "" {
		if gid, err = strconv.Atoi(group); err != nil {
			g, lerr := user.LookupGroup(group)
			if lerr != nil {
				return 0, 0, fmt.Errorf("group %q: no such group: create it or fix the group key", group)
			}
			gid, _ = strconv.Atoi(g.Gid)
		}
	}
	return uid, gid, nil
}

// writeFile writes data to path through a temporary file in the same
// directory, created with mode and owner before any byte is written, so a
// key is never readable by others, not even for a moment.
func writeFile(path string, data []byte, mode os.FileMode, uid, gid int) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	werr := func(err error) error {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if uid != -1 || gid != -1 {
		if err := tmp.Chown(uid, gid); err != nil {
			return werr(err)
		}
	}
	if err := tmp.Chmod(mode); err != nil {
		return werr(err)
	}
	if _, err := tmp.Write(data); err != nil {
		return werr(err)
	}
	if err := tmp.Sync(); err != nil {
		return werr(err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
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
