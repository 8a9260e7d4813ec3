package systemd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// lockService takes an exclusive flock(2) on DIR/NAME.lock, so that the
// daemon and `sensu-tlsd services act` (separate processes sharing the
// state directory) never act on one service at once. It waits for the
// other holder until ctx ends; dir "" means no lock.
func lockService(ctx context.Context, dir, name string, log *slog.Logger) (unlock func(), err error) {
	if dir == "" {
		return func() {}, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("service lock: %w (fix: make the state directory writable by sensu-tlsd, or run as the user the daemon runs as)", err)
	}
	path := filepath.Join(dir, url.PathEscape(name)+".lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("service lock: %w (fix: make the state directory writable by sensu-tlsd, or run as the user the daemon runs as)", err)
	}
	waiting := false
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil // closing the file releases the lock
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, fmt.Errorf("service lock %s: %w", path, err)
		}
		if !waiting {
			waiting = true
			log.Info("waiting for another sensu-tlsd process acting on this service", "lock", path)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("waiting for another sensu-tlsd process acting on this service (lock %s): %w", path, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
