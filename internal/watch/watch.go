package watch

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
)

// DefaultDebounce is how long a burst must be quiet before it is reported:
// long enough to join the cert and key of one replacement, far below the
// one second an operator waits for.
const DefaultDebounce = 20 * time.Millisecond

// point is one directory entry whose change concerns a managed set.
type point struct{ dir, base string }

// Watcher reports the names of managed sets whose files changed.
type Watcher struct {
	fsw      *fsnotify.Watcher
	debounce time.Duration
	changes  chan string

	mu     sync.Mutex
	points map[string][]point        // name -> entries it depends on
	byDir  map[string]map[string]int // dir -> base -> reference count
	names  map[point]map[string]bool // entry -> names depending on it
}

// New returns a Watcher that waits for debounce of quiet after the last
// event of a burst before reporting a name.
func New(debounce time.Duration) (*Watcher, error) {
	fsw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	return &Watcher{
		fsw:      fsw,
		debounce: debounce,
		changes:  make(chan string, 64),
		points:   map[string][]point{},
		byDir:    map[string]map[string]int{},
		names:    map[point]map[string]bool{},
	}, nil
}

// Changes delivers the name of a set after its files changed.
func (w *Watcher) Changes() <-chan string { return w.changes }

// Set makes the watcher follow paths for name, replacing what it followed
// before. Call it again after the symlinks behind the paths move (an
// install), so the watches follow the new targets.
func (w *Watcher) Set(name string, paths []string) error {
	var pts []point
	for _, p := range paths {
		abs, err := filepath.Abs(p)
		if err != nil {
			return err
		}
		pts = append(pts, pointsFor(abs, 0)...)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.dropLocked(name)
	w.points[name] = pts
	for _, pt := range pts {
		if w.names[pt] == nil {
			w.names[pt] = map[string]bool{}
		}
		w.names[pt][name] = true
		if w.byDir[pt.dir] == nil {
			w.byDir[pt.dir] = map[string]int{}
		}
		w.byDir[pt.dir][pt.base]++
		// Remove first: a directory reached through a symlink may now be
		// a different inode than the one watched under the same name.
		w.fsw.Remove(pt.dir)
		if err := w.fsw.Add(pt.dir); err != nil && !os.IsNotExist(err) {
			return err
		}
	}
	return nil
}

// Remove stops following name.
func (w *Watcher) Remove(name string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.dropLocked(name)
}

func (w *Watcher) dropLocked(name string) {
	for _, pt := range w.points[name] {
		delete(w.names[pt], name)
		if len(w.names[pt]) == 0 {
			delete(w.names, pt)
		}
		w.byDir[pt.dir][pt.base]--
		if w.byDir[pt.dir][pt.base] <= 0 {
			delete(w.byDir[pt.dir], pt.base)
		}
		if len(w.byDir[pt.dir]) == 0 {
			delete(w.byDir, pt.dir)
			w.fsw.Remove(pt.dir)
		}
	}
	delete(w.points, name)
}

// pointsFor lists the entries whose change can change what path reads:
// path itself, and for a symlink, its target and every symlinked directory
// on the way to it (the `current` link of an install swaps there).
func pointsFor(path string, depth int) []point {
	pts := []point{{filepath.Dir(path), filepath.Base(path)}}
	if depth > 8 {
		return pts
	}
	target, err := os.Readlink(path)
	if err != nil {
		return pts
	}
	if !filepath.IsAbs(target) {
		target = filepath.Join(filepath.Dir(path), target)
	}
	for dir := filepath.Dir(target); dir != filepath.Dir(dir); dir = filepath.Dir(dir) {
		if fi, err := os.Lstat(dir); err == nil && fi.Mode()&os.ModeSymlink != 0 {
			pts = append(pts, point{filepath.Dir(dir), filepath.Base(dir)})
		}
	}
	return append(pts, pointsFor(target, depth+1)...)
}

// Run delivers debounced changes until ctx ends.
func (w *Watcher) Run(ctx context.Context) error {
	defer w.fsw.Close()
	pending := map[string]bool{}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err, ok := <-w.fsw.Errors:
			if !ok {
				return nil
			}
			if !errors.Is(err, fsnotify.ErrEventOverflow) {
				return err
			}
			// Events were lost: every set may have changed, re-check all.
			w.mu.Lock()
			for n := range w.points {
				pending[n] = true
			}
			w.mu.Unlock()
			timer.Reset(w.debounce)
		case ev, ok := <-w.fsw.Events:
			if !ok {
				return nil
			}
			names := w.match(ev.Name)
			for _, n := range names {
				pending[n] = true
			}
			if len(names) > 0 {
				timer.Reset(w.debounce)
			}
		case <-timer.C:
			for n := range pending {
				select {
				case w.changes <- n:
				case <-ctx.Done():
					return nil
				}
			}
			clear(pending)
		}
	}
}

func (w *Watcher) match(path string) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	pt := point{filepath.Dir(path), filepath.Base(path)}
	var out []string
	for n := range w.names[pt] {
		out = append(out, n)
	}
	return out
}
