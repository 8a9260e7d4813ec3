package rotate

import (
	"context"
	"os"
	"path/filepath"

	"github.com/sensu-tlsd/sensu-tlsd/internal/flock"
)

// lock serialises installs of this certificate across processes (the
// daemon and a `sensu-tlsd renew` run by hand).
func (r *runner) lock() (func(), error) {
	if err := os.MkdirAll(r.plan.Dir, 0o755); err != nil {
		return nil, err
	}
	return flock.Lock(context.Background(), filepath.Join(r.plan.Dir, ".lock"), 0o600)
}
