package sensu

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// BackupSuffix is appended to a file's path for the copy of its previous
// content that WriteFile keeps.
const BackupSuffix = ".sensu-tlsd.bak"

// WriteFile replaces path with data atomically: a temporary file in the same
// directory (same mode and owner as the file it replaces) is written, synced
// and renamed over path, then the directory is synced. The previous content
// is kept in path+BackupSuffix. Writing the bytes the file already holds
// does nothing and reports false.
func WriteFile(path string, data []byte) (bool, error) {
	old, err := os.ReadFile(path)
	switch {
	case err == nil && bytes.Equal(old, data):
		return false, nil
	case err == nil:
		if err := writeAtomic(path+BackupSuffix, old, path); err != nil {
			return false, fmt.Errorf("keeping a backup of %s: %w", path, err)
		}
	case !os.IsNotExist(err):
		return false, err
	}
	if err := writeAtomic(path, data, path); err != nil {
		return false, err
	}
	return true, nil
}

// writeAtomic writes data to path via a temporary file, taking mode and
// owner from like when it exists (0644 root otherwise, as packages ship).
func writeAtomic(path string, data []byte, like string) error {
	mode := os.FileMode(0o644)
	uid, gid := -1, -1
	if st, err := os.Stat(like); err == nil {
		mode = st.Mode().Perm()
		if sys, ok := st.Sys().(*syscall.Stat_t); ok {
			uid, gid = int(sys.Uid), int(sys.Gid)
		}
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return err
	}
	name := tmp.Name()
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(name)
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		return err
	}
	if uid >= 0 && os.Geteuid() == 0 {
		if err := tmp.Chown(uid, gid); err != nil {
			return err
		}
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(name, path); err != nil {
		return err
	}
	ok = true
	if d, err := os.Open(dir); err == nil {
		defer d.Close()
		return d.Sync()
	}
	return nil
}

// WriteNew is WriteFile for callers that keep their own backups (the
// migration keeps one per phase): no .bak file is left beside path.
func WriteNew(path string, data []byte) error {
	old, err := os.ReadFile(path)
	if err == nil && bytes.Equal(old, data) {
		return nil
	}
	return writeAtomic(path, data, path)
}
