package flock

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// ErrLocked is TryLock's answer when another descriptor holds the lock.
var ErrLocked = errors.New("held by another process")

// pollInterval is how often Lock retries while ctx can end the wait: a
// blocking flock(2) cannot be interrupted by a context.
const pollInterval = 50 * time.Millisecond

// File is a file opened for locking.
type File struct{ f *os.File }

// Open opens lock file path, creating it with mode when it is missing. It
// is opened read-only: flock needs no more, and a lock file another user
// made (0644) can still be locked.
func Open(path string, mode os.FileMode) (*File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE, mode)
	if err != nil {
		return nil, err
	}
	return &File{f: f}, nil
}

// OpenDir opens directory dir, which must exist, for locking: the lock
// adds no file to it (install locks /etc/sensu this way).
func OpenDir(dir string) (*File, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	return &File{f: f}, nil
}

// Name is the path the file was opened at.
func (l *File) Name() string { return l.f.Name() }

// TryLock takes the exclusive lock if it is free and returns ErrLocked
// (wrapped, naming the file) when another descriptor holds it.
func (l *File) TryLock() error {
	err := flock(l.f, syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return fmt.Errorf("locking %s: %w", l.Name(), ErrLocked)
	}
	if err != nil {
		return fmt.Errorf("locking %s: %w", l.Name(), err)
	}
	return nil
}

// Lock waits until it holds the exclusive lock. A ctx that can end waits
// only until it does (the error then wraps ctx.Err()); waiting, when not
// nil, is called once, when another holder makes it wait.
func (l *File) Lock(ctx context.Context, waiting func()) error {
	if ctx.Done() == nil && waiting == nil {
		if err := flock(l.f, syscall.LOCK_EX); err != nil {
			return fmt.Errorf("locking %s: %w", l.Name(), err)
		}
		return nil
	}
	for told := false; ; {
		err := l.TryLock()
		if !errors.Is(err, ErrLocked) {
			return err
		}
		if !told && waiting != nil {
			told = true
			waiting()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the lock on %s: %w", l.Name(), ctx.Err())
		case <-time.After(pollInterval):
		}
	}
}

// Close releases the lock (if held) and the file.
func (l *File) Close() error { return l.f.Close() }

// Lock opens path (see Open) and waits for its exclusive lock as
// (*File).Lock does; the returned func releases it.
func Lock(ctx context.Context, path string, mode os.FileMode) (unlock func(), err error) {
	l, err := Open(path, mode)
	if err != nil {
		return nil, err
	}
	return hold(ctx, l)
}

// LockDir is Lock for a directory (see OpenDir).
func LockDir(ctx context.Context, dir string) (unlock func(), err error) {
	l, err := OpenDir(dir)
	if err != nil {
		return nil, err
	}
	return hold(ctx, l)
}

func hold(ctx context.Context, l *File) (func(), error) {
	if err := l.Lock(ctx, nil); err != nil {
		l.Close()
		return nil, err
	}
	return func() { l.Close() }, nil
}

// flock is flock(2) retried when a signal interrupts it.
func flock(f *os.File, how int) error {
	for {
		err := syscall.Flock(int(f.Fd()), how)
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}
