package sensu

import (
	"bytes"
	"fmt"
	"os"

	"github.com/sensu-tlsd/sensu-tlsd/internal/atomicfile"
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
	return atomicfile.Write(path, data, atomicfile.Mode(0o644), atomicfile.Like(like))
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
