package rotate

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/sensu-tlsd/sensu-tlsd/internal/atomicfile"
	"github.com/sensu-tlsd/sensu-tlsd/internal/certstate"
	"github.com/sensu-tlsd/sensu-tlsd/rotate/install"
)

// writeState replaces p's state file atomically so a reader never sees
// half. The file can hold an issuer's error output, so it is as private as
// the key: 0600, or 0640 to the group the key is shared with (so a Sensu
// check running as that group can still read it).
func writeState(p Plan, st certstate.State) error {
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
	return atomicfile.Write(certstate.File(p.Dir), append(b, '\n'), perm...)
}
