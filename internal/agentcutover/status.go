package agentcutover

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/internal/atomicfile"
)

// State is where this node's agent stands in the cutover.
type State string

const (
	StateWaiting    State = "waiting"     // not every backend serves verified TLS yet
	StateSwitched   State = "switched"    // agent.yml says wss:// (and the agent reconnected, when the follower switched it)
	StateRefused    State = "refused"     // something needs the operator: a wrong pin, a missing CA file, an unreadable agent.yml
	StateRolledBack State = "rolled-back" // the agent did not reconnect over wss://; agent.yml went back
)

// Status is the follower's last look, kept in the state file.
type Status struct {
	State    State     `json:"state"`
	Detail   string    `json:"detail"`
	Probed   time.Time `json:"probed"`
	Switched time.Time `json:"switched,omitzero"`
}

// StateFile is where the follower keeps its Status under stateDir.
func StateFile(stateDir string) string { return filepath.Join(stateDir, "agent-cutover.json") }

// ReadStatus reads the state file; a missing one is the zero Status.
func ReadStatus(path string) (Status, error) {
	var s Status
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("%s: %w (the daemon writes it again at its next probe; remove it to start afresh)", path, err)
	}
	return s, nil
}

func writeStatus(path string, s Status) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return atomicfile.Write(path, append(b, '\n'), atomicfile.Mode(0o644))
}
