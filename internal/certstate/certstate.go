package certstate

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// Failure reasons (State.Reason), also the `reason` label of sensu_tlsd_renewal_failures_total.
const (
	FailIssue    = "issue"    // the issuer returned an error
	FailValidate = "validate" // the candidate failed validation
	FailInstall  = "install"  // writing the generation failed
	FailConsumer = "consumer" // a subscriber rejected the new set; rolled back
	FailExternal = "external" // another tool put an invalid set in place
)

// FileName is the state file in each certificate's directory.
const FileName = "state.json"

// State is what the daemon last did for one certificate, persisted so
// `sensu-tlsd status` (another process) can show it.
type State struct {
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

// File is the state file of the certificate whose directory is certDir.
func File(certDir string) string { return filepath.Join(certDir, FileName) }

// ReadAll returns the persisted state of every certificate under
// stateDir, by name. A state dir the daemon never ran in yields an empty map.
func ReadAll(stateDir string) (map[string]State, error) {
	files, err := filepath.Glob(filepath.Join(stateDir, "certs", "*", FileName))
	if err != nil {
		return nil, err
	}
	out := map[string]State{}
	for _, f := range files {
		st, err := Read(f)
		if err != nil {
			return nil, err
		}
		out[filepath.Base(filepath.Dir(f))] = st
	}
	return out, nil
}

// Read reads one state file; a missing file is an empty State.
func Read(path string) (State, error) {
	var st State
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
