package install

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/internal/testpeer"
)

func testSet(tag string) Set {
	return Set{
		Cert: []byte("-----CERT " + tag + "-----\n" + strings.Repeat(tag, 300) + "\n"),
		Key:  []byte("-----KEY " + tag + "-----\n" + strings.Repeat(tag, 100) + "\n"),
		CA:   []byte("-----CA " + tag + "-----\n" + strings.Repeat(tag, 200) + "\n"),
	}
}

func testPaths(root string) Paths {
	return Paths{
		Cert: filepath.Join(root, "etc", "backend.pem"),
		Key:  filepath.Join(root, "etc", "backend-key.pem"),
		CA:   filepath.Join(root, "etc", "ca.pem"),
	}
}

func mustNew(t *testing.T, root string, perms Perms) *Installer {
	t.Helper()
	in, err := New(filepath.Join(root, "state", "certs", "backend"), testPaths(root), 3, perms)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

func TestInstallSwitchesWholeSetAndRollsBack(t *testing.T) {
	root := t.TempDir()
	in := mustNew(t, root, Perms{})
	a, b := testSet("A"), testSet("B")
	if g, err := in.Install(a); err != nil || g != 1 {
		t.Fatalf("first install: gen %d, %v", g, err)
	}
	if g, err := in.Install(b); err != nil || g != 2 {
		t.Fatalf("second install: gen %d, %v", g, err)
	}
	got, err := in.ReadConfigured()
	if err != nil || !got.Equal(b) {
		t.Fatalf("configured paths after install: %q, %v", got, err)
	}
	for _, p := range []string{in.paths.Cert, in.paths.Key, in.paths.CA} {
		if fi, err := os.Lstat(p); err != nil || fi.Mode()&os.ModeSymlink == 0 {
			t.Fatalf("%s is not a symlink: %v %v", p, fi, err)
		}
	}
	if g, err := in.Rollback(a); err != nil || g != 1 {
		t.Fatalf("rollback: gen %d, %v", g, err)
	}
	if got, _ := in.ReadConfigured(); !got.Equal(a) {
		t.Fatalf("after rollback the configured paths read %q, want set A", got.Cert[:12])
	}
}

// TestRollbackNeverReturnsToAGenerationRewrittenInPlace: a `cp` through
// the configured links writes into the current generation; rolling back
// then must bring the set back as it was, not switch to the old
// generation's directory, which now holds the new bytes.
func TestRollbackNeverReturnsToAGenerationRewrittenInPlace(t *testing.T) {
	root := t.TempDir()
	in := mustNew(t, root, Perms{})
	a, b := testSet("A"), testSet("B")
	if _, err := in.Install(a); err != nil {
		t.Fatal(err)
	}
	for _, f := range [][2]string{{in.paths.Cert, string(b.Cert)}, {in.paths.Key, string(b.Key)}, {in.paths.CA, string(b.CA)}} {
		if err := os.WriteFile(f[0], []byte(f[1]), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if g, err := in.Install(b); err != nil || g != 2 {
		t.Fatalf("adopting the copied set: gen %d, %v", g, err)
	}
	g, err := in.Rollback(a)
	if err != nil || g != 3 {
		t.Fatalf("rollback to A: gen %d, %v (want 3: generation 1 now holds B)", g, err)
	}
	if got, _ := in.ReadConfigured(); !got.Equal(a) {
		t.Fatalf("after rollback the configured paths read %q, want set A", got.Cert[:12])
	}
}

func TestInstallAdoptsExistingFilesWithoutChangingThem(t *testing.T) {
	root := t.TempDir()
	p := testPaths(root)
	old := testSet("O")
	os.MkdirAll(filepath.Dir(p.Cert), 0o755)
	os.WriteFile(p.Cert, old.Cert, 0o644)
	os.WriteFile(p.Key, old.Key, 0o600)
	os.WriteFile(p.CA, old.CA, 0o644)
	in := mustNew(t, root, Perms{})
	if g, err := in.Install(testSet("N")); err != nil || g != 2 {
		t.Fatalf("install over existing files: gen %d, %v (want 2: 1 is the adopted set)", g, err)
	}
	adopted, err := in.ReadGeneration(1)
	if err != nil || !adopted.Equal(old) {
		t.Fatalf("generation 1 does not hold the adopted files: %v", err)
	}
	if g, err := in.Rollback(old); err != nil || g != 1 {
		t.Fatalf("rollback to adopted: %d %v", g, err)
	}
	if got, _ := in.ReadConfigured(); !got.Equal(old) {
		t.Fatal("rollback did not bring the original files back")
	}
}

func TestInstallKeepsOnlyNGenerations(t *testing.T) {
	root := t.TempDir()
	in := mustNew(t, root, Perms{})
	for i := range 6 {
		if _, err := in.Install(testSet(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	gens, _ := in.Generations()
	if fmt.Sprint(gens) != "[4 5 6]" {
		t.Fatalf("generations kept: %v, want [4 5 6]", gens)
	}
}

func TestKeyIsNeverInstalledReadableByOthers(t *testing.T) {
	root := t.TempDir()
	for _, bad := range []Perms{{KeyMode: 0o644}, {KeyMode: 0o604}, {KeyMode: 0o640}, {KeyMode: 0o666, Group: "0"}} {
		if _, err := New(filepath.Join(root, "s"), testPaths(root), 3, bad); err == nil {
			t.Errorf("key-mode %04o group %q accepted", bad.KeyMode, bad.Group)
		} else if !strings.Contains(err.Error(), "key-mode") {
			t.Errorf("error does not name key-mode: %v", err)
		}
	}
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	// The process's own group: the one group a non-root run may give the key to.
	ownGroup := strconv.Itoa(os.Getgid())
	for _, tc := range []struct {
		perms Perms
		want  os.FileMode
	}{{Perms{}, 0o600}, {Perms{KeyMode: 0o640, Group: ownGroup}, 0o640}, {Perms{KeyMode: 0o400}, 0o400}} {
		dir := t.TempDir()
		in := mustNew(t, dir, tc.perms)
		for i := range 3 {
			if _, err := in.Install(testSet(fmt.Sprint(i))); err != nil {
				t.Fatal(err)
			}
		}
		filepath.Walk(dir, func(path string, fi os.FileInfo, err error) error {
			if err == nil && fi.Mode().IsRegular() && filepath.Base(path) == KeyName {
				if fi.Mode().Perm() != tc.want {
					t.Errorf("%s installed with mode %04o, want %04o", path, fi.Mode().Perm(), tc.want)
				}
			}
			return nil
		})
		st, err := os.Stat(in.paths.Key)
		if err != nil || st.Mode().Perm()&0o007 != 0 {
			t.Errorf("configured key %s: mode %v, %v", in.paths.Key, st.Mode(), err)
		}
	}
}

// TestCrashDuringInstallNeverMixesSets kills an installer process with
// SIGKILL at random points, at least 200 times, and checks after each kill
// that the configured paths hold the complete set A or the complete set B.
func TestCrashDuringInstallNeverMixesSets(t *testing.T) {
	if testing.Short() {
		t.Skip("crash injection takes a while; run without -short")
	}
	root := t.TempDir()
	a, b := testSet("A"), testSet("B")
	resetToRegularFiles := func() {
		os.RemoveAll(filepath.Join(root, "state"))
		p := testPaths(root)
		os.MkdirAll(filepath.Dir(p.Cert), 0o755)
		for _, f := range []struct {
			path string
			data []byte
		}{{p.Cert, a.Cert}, {p.Key, a.Key}, {p.CA, a.CA}} {
			os.Remove(f.path)
			if err := os.WriteFile(f.path, f.data, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	resetToRegularFiles()
	seen := map[string]int{}
	const kills = 220
	for i := range kills {
		if i%25 == 0 {
			resetToRegularFiles() // exercise adoption of plain files too
		}
		cmd := exec.Command(os.Args[0], "-test.run=^TestInstallerHelperProcess$")
		cmd.Env = append(os.Environ(), "INSTALL_HELPER_ROOT="+root)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := bufio.NewReader(out)
		if _, err := lines.ReadString('\n'); err != nil {
			t.Fatalf("helper did not start: %v", err)
		}
		// Let 0, 1 or 2 installs finish first, so the kill lands on
		// either side of a switch however long an install takes here
		// (fsyncs on a loaded machine), then at a random point of the next.
		for range rand.IntN(3) {
			if _, err := lines.ReadString('\n'); err != nil {
				t.Fatalf("helper stopped: %v", err)
			}
		}
		time.Sleep(time.Duration(rand.IntN(4000)) * time.Microsecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()

		got, err := readSet(testPaths(root))
		switch {
		case err != nil:
			t.Fatalf("kill %d: configured paths unreadable: %v", i, err)
		case got.Equal(a):
			seen["A"]++
		case got.Equal(b):
			seen["B"]++
		default:
			t.Fatalf("kill %d: configured paths hold a mix of sets: cert %q key %q ca %q", i, got.Cert[:12], got.Key[:11], got.CA[:10])
		}
		in := mustNew(t, root, Perms{})
		if err := in.Recover(); err != nil {
			t.Fatalf("kill %d: recover: %v", i, err)
		}
		if after, err := in.ReadConfigured(); err != nil || !after.Equal(got) {
			t.Fatalf("kill %d: recovery changed what readers see: %v", i, err)
		}
		leftovers, _ := filepath.Glob(filepath.Join(root, "*", "*", "*", tmpPrefix+"*"))
		more, _ := filepath.Glob(filepath.Join(root, "etc", tmpPrefix+"*"))
		if len(leftovers)+len(more) > 0 {
			t.Fatalf("kill %d: recovery left temp entries: %v %v", i, leftovers, more)
		}
	}
	if seen["A"] == 0 || seen["B"] == 0 {
		t.Fatalf("kills never landed on both sides of a switch (A %d, B %d): the test did not exercise installs", seen["A"], seen["B"])
	}
	t.Logf("after %d kills: set A %d times, set B %d times", kills, seen["A"], seen["B"])
}

// TestInstallerHelperProcess is the installer the crash test kills: it
// installs set A and set B alternately until it is killed, saying
// "installed" after each.
func TestInstallerHelperProcess(t *testing.T) {
	root := os.Getenv("INSTALL_HELPER_ROOT")
	if root == "" {
		t.Skip("helper process for TestCrashDuringInstallNeverMixesSets")
	}
	in := mustNew(t, root, Perms{})
	sets := []Set{testSet("A"), testSet("B")}
	cur, _ := in.ReadConfigured()
	next := 0
	if bytes.Equal(cur.Cert, sets[0].Cert) {
		next = 1
	}
	fmt.Println("ready")
	for {
		if _, err := in.Install(sets[next]); err != nil {
			fmt.Fprintln(os.Stderr, "helper install:", err)
			os.Exit(3)
		}
		fmt.Println("installed")
		next = 1 - next
	}
}

func TestSharedCABundleIsNotFlippedBetweenSets(t *testing.T) {
	root := t.TempDir()
	ca := filepath.Join(root, "etc", "ca.pem")
	mk := func(name string) *Installer {
		in, err := New(filepath.Join(root, "state", name), Paths{
			Cert: filepath.Join(root, "etc", name+".pem"),
			Key:  filepath.Join(root, "etc", name+"-key.pem"),
			CA:   ca,
		}, 3, Perms{})
		if err != nil {
			t.Fatal(err)
		}
		return in
	}
	a, b := mk("a"), mk("b")
	shared := []byte("the one CA")
	if _, err := a.Install(Set{Cert: []byte("ca"), Key: []byte("ka"), CA: shared}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Install(Set{Cert: []byte("cb"), Key: []byte("kb"), CA: shared}); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.Readlink(ca); !strings.HasPrefix(got, a.dir) {
		t.Fatalf("shared ca.pem flipped to %s although its bytes did not change", got)
	}
	if _, err := b.Install(Set{Cert: []byte("cb2"), Key: []byte("kb2"), CA: []byte("a new CA")}); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(ca); string(got) != "a new CA" {
		t.Fatalf("a new CA bundle was not linked: %q", got)
	}
}

func TestOwnerGroupAndModesAreApplied(t *testing.T) {
	testpeer.NeedRoot(t, "chown to another user needs root")
	root := t.TempDir()
	in := mustNew(t, root, Perms{Owner: "nobody", Group: "nogroup", KeyMode: 0o640, CertMode: 0o644})
	if _, err := in.Install(testSet("A")); err != nil {
		t.Fatal(err)
	}
	for path, mode := range map[string]os.FileMode{in.paths.Key: 0o640, in.paths.Cert: 0o644, in.paths.CA: 0o644} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode().Perm() != mode || st.Uid != uint32(in.uid) || st.Gid != uint32(in.gid) {
			t.Errorf("%s: mode %04o uid %d gid %d, want %04o %d:%d", path, fi.Mode().Perm(), st.Uid, st.Gid, mode, in.uid, in.gid)
		}
	}
}

// TestUnknownOwnerOrGroupNamesTheKeyToFix: the error says which account is
// missing and which key to change.
func TestUnknownOwnerOrGroupNamesTheKeyToFix(t *testing.T) {
	root := t.TempDir()
	for perms, want := range map[Perms]string{
		{Owner: "no-such-user-here"}:  `owner "no-such-user-here": user: unknown user no-such-user-here: create the user or fix the owner key`,
		{Group: "no-such-group-here"}: `group "no-such-group-here": group: unknown group no-such-group-here: create the group or fix the group key`,
	} {
		if _, err := New(filepath.Join(root, "x"), testPaths(root), 3, perms); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%+v: %v, want %q", perms, err, want)
		}
	}
}

// TestConcurrentInstallsShareOneCABundle runs installers of several sets
// that share one ca.pem (the guide's layout) at once, as the daemon's
// runners and a `renew` process do: none may fail, and no temp link may be
// left beside the shared bundle.
func TestConcurrentInstallsShareOneCABundle(t *testing.T) {
	root := t.TempDir()
	ca := filepath.Join(root, "etc", "ca.pem")
	const sets, rounds = 5, 40
	var wg sync.WaitGroup
	errs := make(chan error, sets*rounds)
	for i := range sets {
		name := fmt.Sprintf("backend-%d", i)
		in, err := New(filepath.Join(root, "state", name), Paths{
			Cert: filepath.Join(root, "etc", name+".pem"),
			Key:  filepath.Join(root, "etc", name+"-key.pem"),
			CA:   ca,
		}, 3, Perms{})
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				// Every other round brings a new CA bundle, so the
				// shared link is really replaced, not only checked.
				set := Set{Cert: fmt.Appendf(nil, "%s-%d", name, r), Key: fmt.Appendf(nil, "key-%s-%d", name, r), CA: fmt.Appendf(nil, "CA %d", r/2)}
				if _, err := in.Install(set); err != nil {
					errs <- fmt.Errorf("%s round %d: %w", name, r, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got, err := os.ReadFile(ca); err != nil || !strings.HasPrefix(string(got), "CA ") {
		t.Fatalf("shared ca.pem after concurrent installs: %q, %v", got, err)
	}
	if left, _ := filepath.Glob(filepath.Join(root, "etc", tmpPrefix+"*")); len(left) > 0 {
		t.Fatalf("temp links left beside the configured paths: %v", left)
	}
}

// TestFailedLinkLeavesNothingNewLive: when a configured path cannot be
// linked, Install fails and the set it reports as not installed must not be
// what readers see through the paths that were already linked.
func TestFailedLinkLeavesNothingNewLive(t *testing.T) {
	t.Run("first install", func(t *testing.T) {
		root := t.TempDir()
		p := testPaths(root)
		// A directory where the CA bundle should go: no link can replace it.
		os.MkdirAll(filepath.Join(p.CA, "in-the-way"), 0o755)
		in := mustNew(t, root, Perms{})
		if _, err := in.Install(testSet("A")); err == nil || !strings.Contains(err.Error(), "nothing was installed") {
			t.Fatalf("install with a directory at the CA path: %v", err)
		}
		if cur, err := in.Current(); err != nil || cur != 0 {
			t.Fatalf("current is generation %d (%v) after a failed first install, want none", cur, err)
		}
		if b, err := os.ReadFile(p.Cert); err == nil {
			t.Fatalf("the cert of a failed install is readable at %s: %.12q", p.Cert, b)
		}
	})
	t.Run("renewal", func(t *testing.T) {
		// Set b shares set a's CA bundle; its renewal brings a new CA, so
		// only then must the bundle be relinked, and that fails.
		root := t.TempDir()
		caDir := filepath.Join(root, "ca")
		mk := func(name string) *Installer {
			in, err := New(filepath.Join(root, "state", name), Paths{
				Cert: filepath.Join(root, "etc", name+".pem"),
				Key:  filepath.Join(root, "etc", name+"-key.pem"),
				CA:   filepath.Join(caDir, "ca.pem"),
			}, 3, Perms{})
			if err != nil {
				t.Fatal(err)
			}
			return in
		}
		a, b := mk("a"), mk("b")
		if _, err := a.Install(Set{Cert: []byte("ca1"), Key: []byte("ka1"), CA: []byte("CA 1")}); err != nil {
			t.Fatal(err)
		}
		old := Set{Cert: []byte("cb1"), Key: []byte("kb1"), CA: []byte("CA 1")}
		if _, err := b.Install(old); err != nil {
			t.Fatal(err)
		}
		unwritable(t, caDir)
		_, err := b.Install(Set{Cert: []byte("cb2"), Key: []byte("kb2"), CA: []byte("CA 2")})
		if err == nil || !strings.Contains(err.Error(), "generation 1 stays current") {
			t.Fatalf("install whose CA link fails: %v", err)
		}
		if cur, _ := b.Current(); cur != 1 {
			t.Fatalf("current is generation %d after the failed install, want 1", cur)
		}
		if got, err := b.ReadConfigured(); err != nil || !got.Equal(old) {
			t.Fatalf("after the failed install readers see cert %q key %q ca %q (%v), want the old set", got.Cert, got.Key, got.CA, err)
		}
	})
}

// unwritable makes dir refuse new entries for this process: immutable for
// root (whom modes do not stop), read-only otherwise.
func unwritable(t *testing.T, dir string) {
	t.Helper()
	if os.Geteuid() != 0 {
		if err := os.Chmod(dir, 0o555); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Chmod(dir, 0o755) })
		return
	}
	if out, err := exec.Command("chattr", "+i", dir).CombinedOutput(); err != nil {
		t.Skipf("SKIPPED: root ignores modes and chattr +i %s failed (%v: %s); this file system cannot make a directory refuse a link", dir, err, out)
	}
	t.Cleanup(func() { exec.Command("chattr", "-i", dir).Run() })
}

// TestCASourceStaysTheCAsFile: a local CA's ca.pem that is also the
// configured ca-file is read, never turned into a link into a generation;
// one an earlier version linked becomes a regular file again.
func TestCASourceStaysTheCAsFile(t *testing.T) {
	root := t.TempDir()
	paths := testPaths(root)
	paths.CASource = true
	a := testSet("A")
	if err := os.MkdirAll(filepath.Dir(paths.CA), 0o755); err != nil {
		t.Fatal(err)
	}
	linked := filepath.Join(root, "state", "certs", "old", "current", CAName)
	if err := os.MkdirAll(filepath.Dir(linked), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(linked, a.CA, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(linked, paths.CA); err != nil { // what an earlier version left
		t.Fatal(err)
	}
	in, err := New(filepath.Join(root, "state", "certs", "backend"), paths, 3, Perms{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tag := range []string{"A", "B"} {
		s := testSet(tag)
		s.CA = a.CA // the CA's bytes, as the local-CA issuer hands them out
		if _, err := in.Install(s); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Lstat(paths.CA)
		if err != nil || !fi.Mode().IsRegular() {
			t.Fatalf("after installing %s the CA's ca.pem is %v (%v), want a regular file", tag, fi, err)
		}
		if b, _ := os.ReadFile(paths.CA); !bytes.Equal(b, a.CA) {
			t.Fatalf("after installing %s the CA's ca.pem changed", tag)
		}
		if fi, err := os.Lstat(paths.Cert); err != nil || fi.Mode()&os.ModeSymlink == 0 {
			t.Fatalf("the cert is not linked into the generation: %v %v", fi, err)
		}
	}
	if err := os.RemoveAll(filepath.Join(root, "state", "certs")); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(paths.CA); err != nil || !bytes.Equal(b, a.CA) {
		t.Fatalf("removing every certificate's state took the CA with it: %v", err)
	}
}

// TestReclaimReadsTheCAFileUnderTheLock: the link an earlier version made
// is looked at only under the lock of the CA's directory, so a CA file
// written meanwhile (a CA rollover) is left alone, not overwritten with the
// bytes the link held before.
func TestReclaimReadsTheCAFileUnderTheLock(t *testing.T) {
	root := t.TempDir()
	paths := testPaths(root)
	paths.CASource = true
	linked := filepath.Join(root, "state", "certs", "old", "current", CAName)
	if err := os.MkdirAll(filepath.Dir(linked), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(paths.CA), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(linked, []byte("old CA"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(linked, paths.CA); err != nil {
		t.Fatal(err)
	}
	in, err := New(filepath.Join(root, "state", "certs", "backend"), paths, 3, Perms{})
	if err != nil {
		t.Fatal(err)
	}
	unlock, err := lockDir(filepath.Dir(paths.CA))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- in.reclaimCA() }()
	time.Sleep(200 * time.Millisecond) // reclaimCA is waiting for the lock
	tmp := paths.CA + ".new"
	if err := os.WriteFile(tmp, []byte("rolled-over CA"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, paths.CA); err != nil {
		t.Fatal(err)
	}
	unlock()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(paths.CA); string(b) != "rolled-over CA" {
		t.Fatalf("the CA file written while reclaim waited was overwritten with %q", b)
	}
}
