package install

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/sensu-tlsd/sensu-tlsd/internal/pki"

	"github.com/sensu-tlsd/sensu-tlsd/internal/atomicfile"
	"github.com/sensu-tlsd/sensu-tlsd/internal/flock"
)

// File names inside a generation directory.
const (
	CertName = "cert.pem"
	KeyName  = "key.pem"
	CAName   = "ca.pem"

	currentLink = "current"
	genPrefix   = "gen-"
	tmpPrefix   = ".tmp-"
)

// Set is the content of one certificate set, PEM encoded.
type Set struct {
	Cert, Key, CA []byte
}

// Equal reports whether s and o hold the same bytes.
func (s Set) Equal(o Set) bool {
	return bytes.Equal(s.Cert, o.Cert) && bytes.Equal(s.Key, o.Key) && bytes.Equal(s.CA, o.CA)
}

// Paths are the configured locations services read the set from.
type Paths struct {
	Cert, Key, CA string
	// CASource marks CA as the issuing CA's own certificate (a local CA
	// whose ca-file is its ca.pem, as cfssljson leaves them side by side).
	// That file belongs to the CA: it is read, never replaced by a link
	// into a generation, so no certificate's state holds the CA.
	CASource bool
}

// Perms are the ownership and modes applied to installed files.
type Perms struct {
	Owner    string      // user name or numeric id; "" keeps the installer's
	Group    string      // group name or numeric id; needed for a group-readable key
	KeyMode  os.FileMode // default 0600
	CertMode os.FileMode // cert and CA; default 0644
}

// Installer manages the generations of one certificate set under Dir.
type Installer struct {
	dir   string // STATE/certs/NAME, absolute
	paths Paths  // absolute
	keep  int
	perms Perms
	uid   int
	gid   int
}

// New checks perms and returns an Installer for the set whose generations
// live in dir and which services read at paths. keep is how many
// generations stay on disk (at least 2, so there is always one to roll back to).
func New(dir string, paths Paths, keep int, perms Perms) (*Installer, error) {
	var err error
	in := &Installer{keep: max(keep, 2), perms: perms, uid: -1, gid: -1}
	if in.dir, err = filepath.Abs(dir); err != nil {
		return nil, err
	}
	for _, p := range []*string{&paths.Cert, &paths.Key, &paths.CA} {
		if *p == "" {
			return nil, fmt.Errorf("install: cert, key and CA paths are all required (got cert=%q key=%q ca=%q)", paths.Cert, paths.Key, paths.CA)
		}
		if *p, err = filepath.Abs(*p); err != nil {
			return nil, err
		}
	}
	in.paths = paths
	if in.perms.KeyMode == 0 {
		in.perms.KeyMode = 0o600
	}
	if in.perms.CertMode == 0 {
		in.perms.CertMode = 0o644
	}
	if err := in.resolveOwner(); err != nil {
		return nil, err
	}
	if err := checkKeyMode(in.perms); err != nil {
		return nil, err
	}
	return in, nil
}

// checkKeyMode refuses any mode that lets someone other than the owner and
// a deliberately named group read the private key.
func checkKeyMode(p Perms) error {
	m := p.KeyMode.Perm()
	if m&0o007 != 0 {
		return fmt.Errorf("install: key-mode %04o lets every user on the machine read the private key; use 0600 (or 0640 with a group)", m)
	}
	if m&0o070 != 0 && p.Group == "" {
		return fmt.Errorf("install: key-mode %04o gives a group access to the private key but no group is named; set group: or use 0600", m)
	}
	return nil
}

func (in *Installer) resolveOwner() error {
	if in.perms.Owner != "" {
		id, err := lookupID(in.perms.Owner, func(n string) (string, error) {
			u, err := user.Lookup(n)
			if err != nil {
				return "", err
			}
			return u.Uid, nil
		})
		if err != nil {
			return fmt.Errorf("install: owner %q: %w: create the user or fix the owner key", in.perms.Owner, err)
		}
		in.uid = id
	}
	if in.perms.Group != "" {
		id, err := GroupID(in.perms.Group)
		if err != nil {
			return fmt.Errorf("install: group %q: %w: create the group or fix the group key", in.perms.Group, err)
		}
		in.gid = id
	}
	return nil
}

// GroupID resolves a group name or numeric id, as Perms.Group is given.
func GroupID(group string) (int, error) {
	return lookupID(group, func(n string) (string, error) {
		g, err := user.LookupGroup(n)
		if err != nil {
			return "", err
		}
		return g.Gid, nil
	})
}

func lookupID(name string, lookup func(string) (string, error)) (int, error) {
	if n, err := strconv.Atoi(name); err == nil {
		return n, nil
	}
	s, err := lookup(name)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(s)
}

// Install writes set as a new generation, makes it current in one rename
// and returns its number. The configured paths become symlinks into the
// current generation (regular files already there are adopted first, so
// their content never changes when they turn into symlinks).
func (in *Installer) Install(set Set) (int, error) {
	if err := in.removeLeftovers(); err != nil {
		return 0, err
	}
	if err := in.adopt(); err != nil {
		return 0, err
	}
	prev, err := in.Current()
	if err != nil {
		return 0, err
	}
	gen, err := in.writeGeneration(set)
	if err != nil {
		return 0, err
	}
	if err := in.activate(gen, prev); err != nil {
		return 0, err
	}
	return gen, in.prune()
}

// activate switches `current` to gen and links the configured paths into
// it. Paths already linked through `current` show gen the moment it is
// switched, so when a link then fails `current` goes back to prev (or away,
// when prev is 0): a set reported as not installed is never live.
func (in *Installer) activate(gen, prev int) error {
	if err := in.switchTo(gen); err != nil {
		return err
	}
	lerr := in.linkPaths()
	if lerr == nil {
		return nil
	}
	if prev == 0 {
		if err := os.Remove(filepath.Join(in.dir, currentLink)); err != nil {
			return fmt.Errorf("%w; removing %s to undo it also failed: %v", lerr, currentLink, err)
		}
		return fmt.Errorf("%w (nothing was installed)", lerr)
	}
	if err := in.switchTo(prev); err != nil {
		return fmt.Errorf("%w; switching back to generation %d also failed: %v", lerr, prev, err)
	}
	return fmt.Errorf("%w (generation %d stays current)", lerr, prev)
}

// Current returns the generation `current` points at, or 0 when nothing has
// been installed yet.
func (in *Installer) Current() (int, error) {
	target, err := os.Readlink(filepath.Join(in.dir, currentLink))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n, ok := parseGen(target)
	if !ok {
		return 0, fmt.Errorf("install: %s points at %q, not a generation directory", filepath.Join(in.dir, currentLink), target)
	}
	return n, nil
}

// Generations lists the complete generations on disk, oldest first.
func (in *Installer) Generations() ([]int, error) {
	entries, err := os.ReadDir(in.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var gens []int
	for _, e := range entries {
		if n, ok := parseGen(e.Name()); ok && e.IsDir() {
			gens = append(gens, n)
		}
	}
	sort.Ints(gens)
	return gens, nil
}

// ReadGeneration returns the set stored in generation gen.
func (in *Installer) ReadGeneration(gen int) (Set, error) {
	return readSet(Paths{
		Cert: filepath.Join(in.dir, genName(gen), CertName),
		Key:  filepath.Join(in.dir, genName(gen), KeyName),
		CA:   filepath.Join(in.dir, genName(gen), CAName),
	})
}

// ReadConfigured returns the set as a service reads it through the
// configured paths.
func (in *Installer) ReadConfigured() (Set, error) { return readSet(in.paths) }

// Rollback makes the configured paths hold to again, a set installed
// before: `current` goes back to the newest older generation whose files
// hold exactly to, so the previous generation is reused when it is intact.
// When none does (pruned, or rewritten in place by a `cp` through the
// links), to is installed as a new generation instead of switching to
// whatever bytes an old generation holds now.
func (in *Installer) Rollback(to Set) (int, error) {
	cur, err := in.Current()
	if err != nil {
		return 0, err
	}
	gens, err := in.Generations()
	if err != nil {
		return 0, err
	}
	for i := len(gens) - 1; i >= 0; i-- {
		if gens[i] >= cur {
			continue
		}
		if s, err := in.ReadGeneration(gens[i]); err == nil && s.Equal(to) {
			if err := in.activate(gens[i], cur); err != nil {
				return 0, err
			}
			return gens[i], nil
		}
	}
	return in.Install(to)
}

// Recover finishes or undoes an install that was interrupted: temp
// directories and temp symlinks are removed (they were never visible), and
// when `current` exists every configured path is made to link into it.
// Generations newer than `current` that were never switched to stay; they
// are pruned like any other. Temp links beside a configured path are only
// removed under that directory's lock (see lockDir), so a link another
// installer is about to rename is never taken away from it.
func (in *Installer) Recover() error {
	if err := in.removeLeftovers(); err != nil {
		return err
	}
	cur, err := in.Current()
	if err != nil || cur == 0 {
		return err
	}
	return in.linkPaths()
}

// removeLeftovers is Recover without linking the paths into `current`.
// Install uses it: it links them to the new generation right after, and
// linking them to `current` first would hand a shared CA bundle back to
// this set's older copy in between (during a CA rollover, another set's
// new certificate would be seen beside the old CA).
func (in *Installer) removeLeftovers() error {
	if err := os.MkdirAll(in.dir, 0o755); err != nil {
		return fmt.Errorf("install: creating %s: %w", in.dir, err)
	}
	entries, err := os.ReadDir(in.dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), tmpPrefix) {
			if err := os.RemoveAll(filepath.Join(in.dir, e.Name())); err != nil {
				return fmt.Errorf("install: removing leftover %s: %w", e.Name(), err)
			}
		}
	}
	for _, p := range []string{in.paths.Cert, in.paths.Key, in.paths.CA} {
		if err := removeTempsFor(p); err != nil {
			return err
		}
	}
	return nil
}

// removeTempsFor removes temp symlinks a killed installer left beside a
// configured path. Every installer holds the directory's lock while its
// temp link exists, so any temp link seen under the lock is a leftover.
func removeTempsFor(path string) error {
	unlock, err := lockDir(filepath.Dir(path))
	if errors.Is(err, fs.ErrNotExist) {
		return nil // nothing was ever linked there
	}
	if err != nil {
		return err
	}
	defer unlock()
	matches, err := filepath.Glob(filepath.Join(filepath.Dir(path), tmpPrefix+filepath.Base(path)+"-*"))
	if err != nil {
		return err
	}
	for _, m := range matches {
		if err := os.Remove(m); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("install: removing leftover %s: %w", m, err)
		}
	}
	return nil
}

// lockDir takes an exclusive flock(2) on directory dir itself, so no lock
// file is added to a directory such as /etc/sensu. The lock serialises the
// installers that link paths in dir: the runners of this process (each
// opens its own descriptor, and flock locks conflict between descriptors)
// and another sensu-tlsd process such as `renew`. It is what makes a CA
// bundle shared by several sets safe, which no per-certificate lock covers.
func lockDir(dir string) (func(), error) {
	unlock, err := flock.LockDir(context.Background(), dir)
	if err != nil {
		return nil, fmt.Errorf("install: %w", err)
	}
	return unlock, nil
}

// adopt makes a first generation out of regular files already at the
// configured paths, so switching them to symlinks keeps their content.
func (in *Installer) adopt() error {
	cur, err := in.Current()
	if err != nil || cur != 0 {
		return err
	}
	set, err := readSet(in.paths)
	if err != nil {
		// Nothing complete to adopt: a first install simply creates the paths.
		return nil
	}
	gen, err := in.writeGeneration(set)
	if err != nil {
		return err
	}
	if err := in.switchTo(gen); err != nil {
		return err
	}
	return in.linkPaths()
}

func readSet(p Paths) (Set, error) {
	var s Set
	var err error
	if s.Cert, err = pki.ReadFileLimited(p.Cert, pki.MaxPEMFileBytes, "a PEM certificate chain"); err != nil {
		return Set{}, err
	}
	if s.Key, err = pki.ReadFileLimited(p.Key, pki.MaxKeyFileBytes, "a PEM private key"); err != nil {
		return Set{}, err
	}
	if s.CA, err = pki.ReadFileLimited(p.CA, pki.MaxPEMFileBytes, "a PEM CA bundle"); err != nil {
		return Set{}, err
	}
	return s, nil
}

func (in *Installer) nextGen() (int, error) {
	gens, err := in.Generations()
	if err != nil {
		return 0, err
	}
	if len(gens) == 0 {
		return 1, nil
	}
	return gens[len(gens)-1] + 1, nil
}

// writeGeneration writes set into a temp directory, fsyncs it and renames
// it to its generation name, so a generation directory is always complete.
func (in *Installer) writeGeneration(set Set) (int, error) {
	gen, err := in.nextGen()
	if err != nil {
		return 0, err
	}
	tmp, err := os.MkdirTemp(in.dir, tmpPrefix+genName(gen)+"-")
	if err != nil {
		return 0, err
	}
	files := []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{CertName, set.Cert, in.perms.CertMode},
		{KeyName, set.Key, in.perms.KeyMode},
		{CAName, set.CA, in.perms.CertMode},
	}
	for _, f := range files {
		if err := in.writeFile(filepath.Join(tmp, f.name), f.data, f.mode); err != nil {
			os.RemoveAll(tmp)
			return 0, err
		}
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		os.RemoveAll(tmp)
		return 0, err
	}
	if err := atomicfile.SyncDir(tmp); err != nil {
		os.RemoveAll(tmp)
		return 0, err
	}
	if err := os.Rename(tmp, filepath.Join(in.dir, genName(gen))); err != nil {
		os.RemoveAll(tmp)
		return 0, err
	}
	return gen, atomicfile.SyncDir(in.dir)
}

// writeFile writes name with the configured owner, group and mode, set
// before any byte is written: a key is never readable by others, even for
// an instant.
func (in *Installer) writeFile(name string, data []byte, mode os.FileMode) error {
	if err := atomicfile.Write(name, data, atomicfile.Mode(mode), atomicfile.Owner(in.uid, in.gid)); err != nil {
		return fmt.Errorf("install (owner %q, group %q): %w", in.perms.Owner, in.perms.Group, err)
	}
	return nil
}

// switchTo points `current` at generation gen with one rename(2).
func (in *Installer) switchTo(gen int) error {
	return replaceSymlink(genName(gen), filepath.Join(in.dir, currentLink))
}

// linkPaths makes each configured path a symlink into `current`.
func (in *Installer) linkPaths() error {
	links := []struct{ path, name string }{
		{in.paths.Cert, CertName}, {in.paths.Key, KeyName}, {in.paths.CA, CAName},
	}
	if in.paths.CASource {
		if err := in.reclaimCA(); err != nil {
			return err
		}
		links = links[:2]
	}
	for _, l := range links {
		if err := os.MkdirAll(filepath.Dir(l.path), 0o755); err != nil {
			return err
		}
		if err := in.link(filepath.Join(in.dir, currentLink, l.name), l.path); err != nil {
			return err
		}
	}
	return nil
}

// reclaimCA gives the CA back its ca.pem where an earlier version linked
// it into a generation: the link is replaced by a regular file holding the
// same bytes, so removing that certificate's state cannot take the CA.
func (in *Installer) reclaimCA() error {
	path := in.paths.CA
	unlock, err := lockDir(filepath.Dir(path))
	if errors.Is(err, fs.ErrNotExist) {
		return nil // no CA directory: nothing was ever linked there
	}
	if err != nil {
		return err
	}
	defer unlock()
	target, err := os.Readlink(path)
	if err != nil || !strings.HasPrefix(target, filepath.Dir(in.dir)+string(filepath.Separator)) {
		return nil // a regular file (or not ours): the CA's, as it should be
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("install: reading the CA certificate %s: %w", path, err)
	}
	return in.writeFile(path, b, in.perms.CertMode)
}

// link makes path a symlink to target unless it already reads the same
// bytes, holding the lock of path's directory from the check to the rename.
func (in *Installer) link(target, path string) error {
	unlock, err := lockDir(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer unlock()
	got, err := os.Readlink(path)
	if err == nil && got == target {
		return nil
	}
	// A CA bundle shared by several sets (the guide's one ca.pem) is left
	// linked to whichever set linked it first while the bytes are the
	// same, so installs of different sets do not flip it.
	if err == nil && sameContent(path, target) {
		return nil
	}
	return replaceSymlink(target, path)
}

func sameContent(a, b string) bool {
	x, err := os.ReadFile(a)
	if err != nil {
		return false
	}
	y, err := os.ReadFile(b)
	return err == nil && bytes.Equal(x, y)
}

// replaceSymlink atomically makes path a symlink to target: a temp symlink
// beside it is renamed over it, then the directory is fsynced.
func replaceSymlink(target, path string) error {
	dir := filepath.Dir(path)
	tmp := tmpName(path)
	if err := os.Symlink(target, tmp); err != nil {
		return fmt.Errorf("install: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("install: %w", err)
	}
	return atomicfile.SyncDir(dir)
}

// prune removes the oldest generations beyond keep, never the current one.
func (in *Installer) prune() error {
	cur, err := in.Current()
	if err != nil {
		return err
	}
	gens, err := in.Generations()
	if err != nil {
		return err
	}
	for i := 0; i < len(gens)-in.keep; i++ {
		if gens[i] == cur {
			continue
		}
		if err := os.RemoveAll(filepath.Join(in.dir, genName(gens[i]))); err != nil {
			return err
		}
	}
	return nil
}

// tmpName is a temp file beside path that removeTempsFor recognises as a
// leftover. It is unique (pid and random), so two installers never share one.
func tmpName(path string) string {
	return filepath.Join(filepath.Dir(path), fmt.Sprintf("%s%s-%d-%08x", tmpPrefix, filepath.Base(path), os.Getpid(), rand.Uint32()))
}

func genName(n int) string { return fmt.Sprintf("%s%06d", genPrefix, n) }

func parseGen(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, genPrefix)
	if !ok || len(rest) != 6 {
		return 0, false
	}
	n, err := strconv.Atoi(rest)
	return n, err == nil && n > 0
}
