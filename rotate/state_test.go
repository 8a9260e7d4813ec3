package rotate

import (
	"os"
	"strconv"
	"testing"
)

// TestStateFileIsAsPrivateAsTheKey: state.json can hold an issuer's error
// output, so it is 0600, or 0640 to the group the key is shared with.
func TestStateFileIsAsPrivateAsTheKey(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		group string
		mode  uint32
	}{{"", 0o600}, {strconv.Itoa(os.Getgid()), 0o640}} {
		p := Plan{Name: "backend-1", Dir: dir}
		p.Perms.Group = tc.group
		if err := writeState(p, CertState{Name: "backend-1", LastError: "exec issuer failed"}); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(stateFile(dir))
		if err != nil {
			t.Fatal(err)
		}
		if got := uint32(fi.Mode().Perm()); got != tc.mode {
			t.Errorf("group %q: state.json mode %04o, want %04o", tc.group, got, tc.mode)
		}
	}
}
