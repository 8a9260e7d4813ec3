package testbin

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func TestMain(m *testing.M) { os.Exit(Main(m, nil)) }

// TestProgramsLandInAPrivateDirectory: the build directory is the
// process's own (0700, owned by this user), never a shared path.
func TestProgramsLandInAPrivateDirectory(t *testing.T) {
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "go.mod"), []byte("module hello\n\ngo 1.22\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "main.go"), []byte("package main\n\nfunc main() { println(\"hello\") }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(src)
	p := Program(t, ".")
	if again := Program(t, "."); again != p {
		t.Errorf("a second Build of the same package gave %s, want the first build %s", again, p)
	}
	if filepath.Base(p) != filepath.Base(src) {
		t.Errorf("program named %s, want its directory's name %s", filepath.Base(p), filepath.Base(src))
	}
	for d := filepath.Dir(p); d != filepath.Dir(dir); d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o700 {
			t.Errorf("%s has mode %v, want 0700", d, st.Mode().Perm())
		}
	}
	if out, err := exec.Command(p).CombinedOutput(); err != nil || string(out) != "hello\n" {
		t.Errorf("the built program said %q, %v", out, err)
	}
}
