package flock

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Two descriptors of one process conflict, as two processes do: that is
// what keeps the runners of one daemon apart.
func TestSecondHolderWaitsUntilTheFirstReleases(t *testing.T) {
	path := filepath.Join(t.TempDir(), ".lock")
	unlock, err := Lock(context.Background(), path, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("lock file: %v %v, want it made 0600", fi, err)
	}
	second, err := Open(path, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	if err := second.TryLock(); !errors.Is(err, ErrLocked) {
		t.Fatalf("TryLock on a held lock: %v, want ErrLocked", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	waited := 0
	err = second.Lock(ctx, func() { waited++ })
	if !errors.Is(err, context.DeadlineExceeded) || waited != 1 {
		t.Fatalf("Lock while held: %v after %d waiting calls, want the deadline after one", err, waited)
	}

	got := make(chan error, 1)
	go func() { got <- second.Lock(context.Background(), nil) }()
	select {
	case err := <-got:
		t.Fatalf("Lock returned %v while the first holder still held it", err)
	case <-time.After(100 * time.Millisecond):
	}
	unlock()
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Lock did not return once the first holder released it")
	}
}

// A directory is locked as it is: no lock file appears in it (install
// locks /etc/sensu this way).
func TestADirectoryIsLockedWithoutAFileInIt(t *testing.T) {
	dir := t.TempDir()
	unlock, err := LockDir(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	other, err := OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := other.TryLock(); !errors.Is(err, ErrLocked) {
		t.Fatalf("TryLock on a locked directory: %v, want ErrLocked", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("locking a directory left %v in it", entries)
	}
}
