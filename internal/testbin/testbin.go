package testbin

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

var (
	mu      sync.Mutex
	dir     string // the private directory; "" outside Main
	builds  = map[string]*build{}
	serials int
)

type build struct {
	n    int // names the build's own subdirectory
	once sync.Once
	path string
	err  error
}

// Main makes the private directory, calls setup (when not nil) to build
// what every test needs, runs the tests and removes the directory. It
// returns the exit code for os.Exit:
//
//	func TestMain(m *testing.M) { os.Exit(testbin.Main(m, nil)) }
func Main(m *testing.M, setup func() error) int {
	d, err := os.MkdirTemp("", "sensu-tlsd-test-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "testbin:", err)
		return 1
	}
	defer os.RemoveAll(d)
	mu.Lock()
	dir = d
	mu.Unlock()
	if setup != nil {
		if err := setup(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	return m.Run()
}

// Build builds the main package pkg (an import path, or a directory
// relative to the test's package) with the extra go build flags, once per
// test process, and returns the executable's path.
func Build(pkg string, flags ...string) (string, error) {
	key := strings.Join(append([]string{pkg}, flags...), "\x00")
	mu.Lock()
	d := dir
	b := builds[key]
	if b == nil {
		serials++
		b = &build{n: serials}
		builds[key] = b
	}
	mu.Unlock()
	if d == "" {
		return "", errors.New("testbin.Build outside testbin.Main: the package's TestMain must return testbin.Main(m, ...), which makes and removes the private directory")
	}
	b.once.Do(func() {
		// Each build gets its own directory, so the program keeps its
		// package's name (tests see it as argv[0]).
		name := path.Base(filepath.ToSlash(pkg))
		if abs, err := filepath.Abs(pkg); err == nil && strings.HasPrefix(pkg, ".") {
			name = filepath.Base(abs)
		}
		sub := filepath.Join(d, strconv.Itoa(b.n))
		if b.err = os.Mkdir(sub, 0o700); b.err != nil {
			return
		}
		b.path = filepath.Join(sub, name)
		args := append(append([]string{"build", "-o", b.path}, flags...), pkg)
		if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
			b.err = fmt.Errorf("building %s for the tests: %v\n%s", pkg, err, out)
		}
	})
	return b.path, b.err
}

// Program is Build that fails the test on an error.
func Program(t testing.TB, pkg string, flags ...string) string {
	t.Helper()
	p, err := Build(pkg, flags...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
