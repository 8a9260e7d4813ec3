package atomicfile

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestWriteReplacesWithModeAndLeavesNoTemp(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "key.pem")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Write(path, []byte("new"), Mode(0o600)); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil || string(b) != "new" {
		t.Fatalf("content %q %v, want new", b, err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %04o, want 0600", fi.Mode().Perm())
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("directory holds %v, want only the file", entries)
	}
}

func TestLikeKeepsTheModeOfTheFileItReplaces(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "backend.yml")
	if err := os.WriteFile(path, []byte("a: 1\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := Write(path, []byte("a: 2\n"), Mode(0o644), Like(path)); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o640 {
		t.Fatalf("mode %04o, want the replaced file's 0640", fi.Mode().Perm())
	}
	fresh := filepath.Join(dir, "agent.yml")
	if err := Write(fresh, nil, Mode(0o644), Like(fresh)); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(fresh); fi.Mode().Perm() != 0o644 {
		t.Fatalf("a new file got %04o, want Mode's 0644", fi.Mode().Perm())
	}
}

func TestOwnerIsSetBeforeTheFileAppears(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("SKIPPED (needs root): giving a file to another owner")
	}
	path := filepath.Join(t.TempDir(), "key.pem")
	if err := Write(path, []byte("k"), Mode(0o640), Owner(65534, 65534)); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if st.Uid != 65534 || st.Gid != 65534 || fi.Mode().Perm() != 0o640 {
		t.Fatalf("owner %d:%d mode %04o, want 65534:65534 0640", st.Uid, st.Gid, fi.Mode().Perm())
	}
}

func TestAFailedWriteNamesThePath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing-dir", "state.json")
	if err := Write(path, []byte("{}")); err == nil || !strings.Contains(err.Error(), "writing "+path) {
		t.Fatalf("error %v, want one naming %s", err, path)
	}
}
