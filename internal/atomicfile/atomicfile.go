package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// Option changes how Write creates the file.
type Option func(*options)

type options struct {
	mode     os.FileMode
	uid, gid int
	like     string
}

// Mode sets the file's permission bits (default 0600).
func Mode(m os.FileMode) Option { return func(o *options) { o.mode = m.Perm() } }

// Owner gives the file numeric owner uid and group gid; -1 keeps the
// writer's for either.
func Owner(uid, gid int) Option { return func(o *options) { o.uid, o.gid = uid, gid } }

// Like takes mode and owner from the file at path when it exists,
// overriding Mode and Owner; the owner only when running as root, which
// alone may give a file away. A file that is missing leaves Mode and Owner.
func Like(path string) Option { return func(o *options) { o.like = path } }

// Write replaces path with data (see the package doc).
func Write(path string, data []byte, opts ...Option) error {
	o := options{mode: 0o600, uid: -1, gid: -1}
	for _, opt := range opts {
		opt(&o)
	}
	if o.like != "" {
		if fi, err := os.Stat(o.like); err == nil {
			o.mode = fi.Mode().Perm()
			if st, ok := fi.Sys().(*syscall.Stat_t); ok && os.Geteuid() == 0 {
				o.uid, o.gid = int(st.Uid), int(st.Gid)
			}
		}
	}
	if err := write(path, data, o); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

func write(path string, data []byte, o options) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*") // 0600
	if err != nil {
		return err
	}
	renamed := false
	defer func() {
		if !renamed {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if o.uid >= 0 || o.gid >= 0 {
		if err := tmp.Chown(o.uid, o.gid); err != nil {
			return err
		}
	}
	if err := tmp.Chmod(o.mode); err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	renamed = true
	return SyncDir(dir)
}

// SyncDir fsyncs directory dir, so a rename or a new entry in it survives
// a crash.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
