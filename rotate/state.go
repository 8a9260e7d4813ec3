package rotate

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/internal/atomicfile"
	"github.com/sensu-tlsd/sensu-tlsd/rotate/install"
)

const stateFileName = "state.json"

// CertState is what the daemon last did for one certificate, persisted so
// `sensu-tlsd status` (another process) can show it.
type CertState struct {
	Name        string    `json:"name"`
	Serial      string    `json:"serial,omitempty"`
	NotAfter    time.Time `json:"not_after,omitzero"`
	Generation  int       `json:"generation,omitempty"`
	NextRenewal time.Time `json:"next_renewal,omitzero"`
	LastSuccess time.Time `json:"last_success,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	// Reason is LastError's kind: a failure reason (issue, validate,
	// install, consumer, external) or "interrupted".
	Reason string `json:"reason,omitempty"`
	// RejectedSerial is the serial consumers last refused. It is never
	// installed again; a set consumers accept (such as one `renew --force`
	// installs) or a reload forgets it. LastError says what ends it.
	RejectedSerial string `json:"rejected_serial,omitempty"`
	// CertFile, KeyFile and CAFile are where consumers last took the set,
	// so a reload or restart that moved them is announced (Sensu's files
	// then follow).
	CertFile string `json:"cert_file,omitempty"`
	KeyFile  string `json:"key_file,omitempty"`
	CAFile   string `json:"ca_file,omitempty"`
	// Failures counts consecutive failed attempts; a success resets it.
	Failures int `json:"failures"`
	Renewals int `json:"renewals"`
}

func stateFile(certDir string) string { return filepath.Join(certDir, stateFileName) }

// ReadState returns the persisted state of every certificate under
// stateDir, by name. A state dir the daemon never ran in yields an empty map.
func ReadState(stateDir string) (map[string]CertState, error) {
	files, err := filepath.Glob(filepath.Join(stateDir, "certs", "*", stateFileName))
	if err != nil {
		return nil, err
	}
	out := map[string]CertState{}
	for _, f := range files {
		st, err := readStateFile(f)
		if err != nil {
			return nil, err
		}
		out[filepath.Base(filepath.Dir(f))] = st
	}
	return out, nil
}

func readStateFile(path string) (CertState, error) {
	var st CertState
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("%s: not a sensu-tlsd state file: %w", path, err)
	}
	return st, nil
}

// writeState replaces p's state file atomically so a reader never sees
// half. The file can hold an issuer's error output, so it is as private as
// the key: 0600, or 0640 to the group the key is shared with (so a Sensu
// check running as that group can still read it).
func writeState(p Plan, st CertState) error {
	if err := os.MkdirAll(p.Dir, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	perm := []atomicfile.Option{atomicfile.Mode(0o600)}
	if p.Perms.Group != "" {
		gid, err := install.GroupID(p.Perms.Group)
		if err != nil {
			return fmt.Errorf("group %q: %w", p.Perms.Group, err)
		}
		perm = []atomicfile.Option{atomicfile.Mode(0o640), atomicfile.Owner(-1, gid)}
	}
	return atomicfile.Write(stateFile(p.Dir), append(b, '\n'), perm...)
}
