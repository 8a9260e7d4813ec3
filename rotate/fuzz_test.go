package rotate

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/sensu-tlsd/sensu-tlsd/internal/certstate"
)

// FuzzReadState feeds state files (written by another process, possibly
// truncated or edited by hand) to the reader `status` uses.
func FuzzReadState(f *testing.F) {
	f.Add([]byte(`{"name":"backend-1","serial":"AB","failures":2,"next_renewal":"2026-01-01T00:00:00Z"}`))
	f.Add([]byte(`{`))
	f.Add([]byte(``))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		cert := filepath.Join(dir, "certs", "x")
		os.MkdirAll(cert, 0o755)
		os.WriteFile(certstate.File(cert), data, 0o644)
		st, err := certstate.ReadAll(dir)
		if err == nil && len(st) != 1 {
			t.Fatalf("ReadState returned %d entries for one file", len(st))
		}
	})
}
