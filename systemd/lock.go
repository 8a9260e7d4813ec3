package systemd

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/sensu-tlsd/sensu-tlsd/internal/flock"
)

// checkLockDir checks, touching nothing, that this process can create
// lock files in dir (STATE-DIR/services), or create dir, so a directory it
// cannot use stops the daemon at start, not at a rotation.
func checkLockDir(dir string) error {
	p := dir
	fi, err := os.Stat(p)
	for errors.Is(err, fs.ErrNotExist) && filepath.Dir(p) != p {
		p = filepath.Dir(p) // dir is made at the first lock: its parent must be writable
		fi, err = os.Stat(p)
	}
	if err == nil && !fi.IsDir() {
		err = fmt.Errorf("%s is not a directory", p)
	}
	if err == nil {
		err = unix.Access(p, unix.W_OK|unix.X_OK)
	}
	if err == nil {
		return nil
	}
	me := strconv.Itoa(os.Geteuid())
	if u, uerr := user.Current(); uerr == nil {
		me = u.Username
	}
	return fmt.Errorf("service lock directory %s: %s cannot create files in %s: %w (fix: make %s a directory the user sensu-tlsd runs as (%s) can write: "+
		"chown -R %s: %s, or remove it and sensu-tlsd makes it again)", dir, me, p, err, dir, me, me, dir)
}

// makeLockDir makes dir at the first lock. Made by root (an operator's
// `services act`) it gets the owner of the state directory, the user the
// daemon runs as (the polkit setup), not root.
func makeLockDir(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if os.Geteuid() == 0 {
		return giveToParentOwner(dir)
	}
	return nil
}

// giveToParentOwner gives path the owner and group of its directory.
func giveToParentOwner(path string) error {
	fi, err := os.Stat(filepath.Dir(path))
	if err != nil {
		return err
	}
	st := fi.Sys().(*syscall.Stat_t)
	return os.Lchown(path, int(st.Uid), int(st.Gid))
}

const unlocked = "acting without the service lock: another sensu-tlsd process acting on this service at the same time is not kept apart"

// lockService takes an exclusive flock(2) on DIR/NAME.lock, so that the
// daemon and `sensu-tlsd services act` (separate processes sharing the
// state directory) never act on one service at once. It waits for the
// other holder until ctx ends, the one error it returns. A lock file that
// cannot be made or opened (checkLockDir found the directory usable when
// the services were built) is logged and the action goes ahead unlocked:
// the lock keeps two processes apart, and is no reason to refuse a
// certificate. dir "" means no lock.
func lockService(ctx context.Context, dir, name string, log *slog.Logger) (unlock func(), err error) {
	if dir == "" {
		return func() {}, nil
	}
	path := filepath.Join(dir, url.PathEscape(name)+".lock")
	err = makeLockDir(dir)
	var l *flock.File
	if err == nil {
		l, err = flock.Open(path, 0o644)
	}
	if err != nil {
		log.Error(unlocked, "lock", path, "err", err, "fix", "make "+dir+" writable by the user sensu-tlsd runs as")
		return func() {}, nil
	}
	if os.Geteuid() == 0 {
		if err := giveToParentOwner(path); err != nil {
			log.Warn("lock file stays root's; a daemon running as another user cannot open it", "lock", path, "err", err)
		}
	}
	waiting := func() { log.Info("waiting for another sensu-tlsd process acting on this service", "lock", path) }
	if err := l.Lock(ctx, waiting); err != nil {
		l.Close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("waiting for another sensu-tlsd process acting on this service (lock %s): %w", path, ctx.Err())
		}
		log.Error(unlocked, "lock", path, "err", err)
		return func() {}, nil
	}
	return func() { l.Close() }, nil // closing the file releases the lock
}
