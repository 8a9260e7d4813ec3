package reload

import (
	"context"

	"github.com/sensu-tlsd/sensu-tlsd/config"
)

// Reloader is a part of the daemon that follows configuration reloads.
type Reloader interface {
	// Prepare builds everything cfg needs without changing what runs; an
	// error rejects the whole reload.
	Prepare(cfg *config.Config) (Pending, error)
}

// Pending is what a Reloader prepared for one configuration. Exactly one
// of Commit and Abort is called, once.
type Pending interface {
	// Commit puts the prepared configuration in effect. An error (a port
	// taken since Prepare) leaves this part as it was; the others stay
	// committed.
	Commit(ctx context.Context) error
	// Abort releases what Prepare built; the reload was rejected.
	Abort()
}
