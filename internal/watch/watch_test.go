package watch

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/rotate/install"
)

func startWatcher(t testing.TB, debounce time.Duration) *Watcher {
	t.Helper()
	w, err := New(debounce)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return w
}

func expectChange(t *testing.T, w *Watcher, want string) {
	t.Helper()
	select {
	case got := <-w.Changes():
		if got != want {
			t.Fatalf("change for %q, want %q", got, want)
		}
	case <-time.After(time.Second):
		t.Fatalf("no change reported for %q within a second", want)
	}
}

func expectQuiet(t *testing.T, w *Watcher) {
	t.Helper()
	select {
	case got := <-w.Changes():
		t.Fatalf("unexpected change for %q", got)
	case <-time.After(200 * time.Millisecond):
	}
}

func TestRenameIntoPlaceAndCopyThroughSymlinkAreReported(t *testing.T) {
	root := t.TempDir()
	paths := install.Paths{
		Cert: filepath.Join(root, "etc", "c.pem"),
		Key:  filepath.Join(root, "etc", "k.pem"),
		CA:   filepath.Join(root, "etc", "ca.pem"),
	}
	in, err := install.New(filepath.Join(root, "state"), paths, 3, install.Perms{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := in.Install(install.Set{Cert: []byte("c1"), Key: []byte("k1"), CA: []byte("a1")}); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(root, "etc", "unrelated"), nil, 0o644)
	w := startWatcher(t, 20*time.Millisecond)
	list := []string{paths.Cert, paths.Key, paths.CA}
	if err := w.Set("backend", list); err != nil {
		t.Fatal(err)
	}

	// mv of a new cert over the symlink: replaces the directory entry.
	tmp := filepath.Join(root, "new.pem")
	os.WriteFile(tmp, []byte("c2"), 0o644)
	if err := os.Rename(tmp, paths.Cert); err != nil {
		t.Fatal(err)
	}
	expectChange(t, w, "backend")

	// Another install swaps `current`: seen through the symlinked dir.
	in.Install(install.Set{Cert: []byte("c3"), Key: []byte("k3"), CA: []byte("a3")})
	expectChange(t, w, "backend")
	if err := w.Set("backend", list); err != nil {
		t.Fatal(err)
	}
	// An install spans several fsyncs; on a loaded machine its events
	// may arrive as more than one burst. Drain them, then expect quiet.
	for drained := false; !drained; {
		select {
		case <-w.Changes():
		case <-time.After(200 * time.Millisecond):
			drained = true
		}
	}
	expectQuiet(t, w)

	// cp over the key writes through the symlink into the generation.
	if err := os.WriteFile(paths.Key, []byte("k4"), 0o600); err != nil {
		t.Fatal(err)
	}
	expectChange(t, w, "backend")

	// A file nobody manages changes: nothing is reported.
	os.WriteFile(filepath.Join(root, "etc", "unrelated"), []byte("x"), 0o644)
	expectQuiet(t, w)

	w.Remove("backend")
	os.WriteFile(paths.CA, []byte("a5"), 0o644)
	expectQuiet(t, w)
}

func TestBurstIsOneChange(t *testing.T) {
	dir := t.TempDir()
	w := startWatcher(t, 50*time.Millisecond)
	files := []string{filepath.Join(dir, "a.pem"), filepath.Join(dir, "a-key.pem")}
	w.Set("a", files)
	for range 5 {
		for _, f := range files {
			os.WriteFile(f, []byte("x"), 0o600)
		}
	}
	expectChange(t, w, "a")
	expectQuiet(t, w)
}

// BenchmarkChangeToEvent measures the time from a rename into place to the
// change being delivered, with the daemon's default debounce.
func BenchmarkChangeToEvent(b *testing.B) {
	dir := b.TempDir()
	w := startWatcher(b, DefaultDebounce)
	target := filepath.Join(dir, "cert.pem")
	w.Set("bench", []string{target})
	tmp := filepath.Join(dir, "tmp")
	b.ResetTimer()
	for b.Loop() {
		os.WriteFile(tmp, []byte("x"), 0o644)
		os.Rename(tmp, target)
		<-w.Changes()
	}
}
