package packaging_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/internal/systemdtest"
	"github.com/sensu-tlsd/sensu-tlsd/internal/testpeer"
)

// repoRoot is the repository, from this package's directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// buildPackages builds the binary with version and packs it with nfpm (from
// tools/go.mod) as make package does, into dir; it returns the .deb and
// the .rpm.
func buildPackages(t *testing.T, dir, version string) (deb, rpm string) {
	t.Helper()
	root := repoRoot(t)
	stage := filepath.Join(dir, "stage-"+version)
	// nfpm.yaml names files relative to the repository root and the
	// binary in dist/bin: a stage with links to the sources and its own
	// binary packs the same way.
	for _, d := range []string{"systemd", "packaging", "examples"} {
		if err := os.MkdirAll(stage, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.Join(root, d), filepath.Join(stage, d)); err != nil {
			t.Fatal(err)
		}
	}
	gobuild(t, root, []string{"CGO_ENABLED=0"}, "build", "-trimpath", "-ldflags", "-X main.version="+version,
		"-o", filepath.Join(stage, "dist", "bin", "sensu-tlsd"), "./cmd/sensu-tlsd")
	nfpm := filepath.Join(dir, "nfpm")
	if _, err := os.Stat(nfpm); err != nil {
		gobuild(t, root, nil, "build", "-modfile=tools/go.mod", "-o", nfpm, "github.com/goreleaser/nfpm/v2/cmd/nfpm")
	}
	out := filepath.Join(dir, "out-"+version)
	os.MkdirAll(out, 0o755)
	for _, p := range []string{"deb", "rpm"} {
		cmd := exec.Command(nfpm, "package", "--config", "packaging/nfpm.yaml", "--packager", p, "--target", out+"/")
		cmd.Dir = stage
		cmd.Env = append(os.Environ(), "VERSION="+version, "ARCH=amd64")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("nfpm package --packager %s: %v\n%s", p, err, b)
		}
	}
	debs, _ := filepath.Glob(filepath.Join(out, "*.deb"))
	rpms, _ := filepath.Glob(filepath.Join(out, "*.rpm"))
	if len(debs) != 1 || len(rpms) != 1 {
		t.Fatalf("nfpm made %v and %v, want one .deb and one .rpm", debs, rpms)
	}
	return debs[0], rpms[0]
}

func gobuild(t *testing.T, dir string, env []string, args ...string) {
	t.Helper()
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, b)
	}
}

// inNS runs a command in the test system's mount and PID namespaces, as
// an operator's shell on that machine would, and returns its output and
// exit status.
func inNS(t *testing.T, sys *systemdtest.System, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command("nsenter", append([]string{"-t", fmt.Sprint(sys.PID), "-m", "-p"}, args...)...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	b, err := cmd.CombinedOutput() // no stdin: a dpkg prompt fails the test
	if ee, ok := err.(*exec.ExitError); ok {
		return string(b), ee.ExitCode()
	} else if err != nil {
		t.Fatalf("nsenter %v: %v", args, err)
	}
	return string(b), 0
}

func mustNS(t *testing.T, sys *systemdtest.System, args ...string) string {
	t.Helper()
	out, code := inNS(t, sys, args...)
	if code != 0 {
		t.Fatalf("%s: exit %d\n%s", strings.Join(args, " "), code, out)
	}
	return out
}

// overlayRoot puts a writable overlay over /etc, /usr and /var inside the
// namespace, with the changes in upper: dpkg installs, upgrades and purges
// there while the host's files and package database stay as they were.
func overlayRoot(t *testing.T, sys *systemdtest.System, upper string) {
	t.Helper()
	for _, d := range []string{"etc", "usr", "var"} {
		u, w := filepath.Join(upper, d, "upper"), filepath.Join(upper, d, "work")
		for _, p := range []string{u, w} {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		mustNS(t, sys, "mount", "-t", "overlay", "overlay", "-o", fmt.Sprintf("lowerdir=/%s,upperdir=%s,workdir=%s", d, u, w), "/"+d)
	}
	sys.Systemctl("daemon-reload")
}

func statIn(t *testing.T, sys *systemdtest.System, path string) (os.FileMode, uint32, bool) {
	t.Helper()
	fi, err := os.Lstat(sys.Path(path))
	if os.IsNotExist(err) {
		return 0, 0, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode(), fi.Sys().(*syscall.Stat_t).Uid, true
}

// TestDebInstallUpgradePurge installs the .deb with dpkg into a real
// systemd, starts the unit with the shipped config, upgrades over it with
// an edited /etc/sensu/tlsd.yml and purges it, checking each step.
func TestDebInstallUpgradePurge(t *testing.T) {
	testpeer.NeedRoot(t, "dpkg installs into a systemd booted in a private namespace, which needs root")
	for _, tool := range []string{"dpkg", "systemd-analyze"} {
		_, err := exec.LookPath(tool)
		testpeer.NeedPeer(t, err == nil, tool+" missing (Debian packages dpkg, systemd)")
	}
	_, overlayErr := os.Stat("/sys/module/overlay")
	fs, _ := os.ReadFile("/proc/filesystems")
	testpeer.NeedPeer(t, overlayErr == nil || strings.Contains(string(fs), "overlay"), "the kernel has no overlayfs: dpkg would write the host's /etc, /usr and /var")
	dir := t.TempDir() // before Boot: removed after the namespace ends
	deb1, rpm1 := buildPackages(t, dir, "1.0.0")
	deb2, _ := buildPackages(t, dir, "1.0.1")
	sys := systemdtest.Boot(t)
	overlayRoot(t, sys, filepath.Join(dir, "overlay"))
	for _, p := range []string{deb1, deb2} {
		dst := sys.Path("/run/" + filepath.Base(p))
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(dst, b, 0o644)
	}
	const unit = "sensu-tlsd.service"

	out := mustNS(t, sys, "dpkg", "-i", "/run/"+filepath.Base(deb1))
	t.Logf("dpkg -i 1.0.0:\n%s", out)
	for path, want := range map[string]os.FileMode{
		"/usr/sbin/sensu-tlsd":                                   0o755,
		"/usr/lib/systemd/system/sensu-tlsd.service":             0o644,
		"/etc/sensu/tlsd.yml":                                    0o644,
		"/var/lib/sensu-tlsd":                                    os.ModeDir | 0o700,
		"/usr/share/doc/sensu-tlsd/examples/nonroot.conf":        0o644,
		"/usr/share/doc/sensu-tlsd/examples/50-sensu-tlsd.rules": 0o644,
	} {
		mode, uid, ok := statIn(t, sys, path)
		if !ok || mode != want || uid != 0 {
			t.Errorf("%s: mode %v uid %d (exists %v), want %v root", path, mode, uid, ok, want)
		}
	}
	if _, err := os.Stat(sys.Path("/etc/polkit-1/rules.d/50-sensu-tlsd.rules")); err == nil {
		t.Errorf("the polkit rule is active after install; it is a documented option")
	}
	if pw := mustNS(t, sys, "getent", "passwd", "sensu-tlsd"); !strings.Contains(pw, ":/var/lib/sensu-tlsd:/usr/sbin/nologin") {
		t.Errorf("sensu-tlsd user: %s", pw)
	}
	mustNS(t, sys, "getent", "group", "sensu")
	if v := mustNS(t, sys, "/usr/sbin/sensu-tlsd", "version"); !strings.Contains(v, "1.0.0") {
		t.Errorf("installed binary's version: %s", v)
	}
	if st, _ := sys.SystemctlStatus("is-enabled", unit); st != "disabled" {
		t.Errorf("after install the unit is %q, want disabled (the package enables nothing)", st)
	}
	if st, _ := sys.SystemctlStatus("is-active", unit); st != "inactive" {
		t.Errorf("after install the unit is %q, want inactive (the package starts nothing)", st)
	}
	if out, code := inNS(t, sys, "systemd-analyze", "verify", "/usr/lib/systemd/system/sensu-tlsd.service"); code != 0 {
		t.Errorf("systemd-analyze verify of the installed unit: exit %d\n%s", code, out)
	}
	mustNS(t, sys, "/usr/sbin/sensu-tlsd", "config", "validate") // the shipped /etc/sensu/tlsd.yml

	// The test systemd masks the default dependencies and journald, and
	// shares the host's network: the unit keeps everything else as shipped.
	sys.InstallDropIn(unit, "test", "[Unit]\nDefaultDependencies=no\n[Service]\nStandardOutput=append:/run/tlsd.log\nStandardError=inherit\nEnvironment=SENSU_TLSD_METRICS_ADDRESS=127.0.0.1:0\n")
	if out, code := sys.SystemctlStatus("start", unit); code != 0 {
		log, _ := os.ReadFile(sys.Path("/run/tlsd.log"))
		t.Fatalf("starting the installed unit: %s\n%s", out, log)
	}
	pid := sys.Property(unit, "MainPID")

	// The operator edits the config; the upgrade keeps the edit and
	// restarts the running daemon, and only because it was running.
	conf := sys.Path("/etc/sensu/tlsd.yml")
	shipped, _ := os.ReadFile(conf)
	edited := string(shipped) + "log-level: debug\n"
	os.WriteFile(conf, []byte(edited), 0o644)
	t.Logf("dpkg -i 1.0.1:\n%s", mustNS(t, sys, "dpkg", "-i", "/run/"+filepath.Base(deb2)))
	if b, _ := os.ReadFile(conf); string(b) != edited {
		t.Errorf("the upgrade replaced the edited /etc/sensu/tlsd.yml")
	}
	if v := mustNS(t, sys, "/usr/sbin/sensu-tlsd", "version"); !strings.Contains(v, "1.0.1") {
		t.Errorf("upgraded binary's version: %s", v)
	}
	if after := sys.Property(unit, "MainPID"); after == pid || sys.Property(unit, "ActiveState") != "active" {
		t.Errorf("after the upgrade: MainPID %s → %s, %s; want a restarted, active daemon", pid, after, sys.Property(unit, "ActiveState"))
	}
	if st, _ := sys.SystemctlStatus("is-enabled", unit); st != "disabled" {
		t.Errorf("after the upgrade the unit is %q, want still disabled", st)
	}
	os.WriteFile(filepath.Join(sys.Path("/var/lib/sensu-tlsd"), "marker"), []byte("state"), 0o600)

	t.Logf("dpkg --purge:\n%s", mustNS(t, sys, "dpkg", "--purge", "sensu-tlsd"))
	deadline := time.Now().Add(10 * time.Second)
	for sys.Property(unit, "ActiveState") == "active" && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if st := sys.Property(unit, "ActiveState"); st == "active" {
		t.Errorf("the daemon still runs after purge")
	}
	for _, gone := range []string{"/usr/sbin/sensu-tlsd", "/usr/lib/systemd/system/sensu-tlsd.service", "/etc/sensu/tlsd.yml", "/usr/share/doc/sensu-tlsd"} {
		if _, _, ok := statIn(t, sys, gone); ok {
			t.Errorf("%s remains after purge", gone)
		}
	}
	// What stays, on purpose: the state (the local CA's key and the
	// certificates Sensu uses) and the system user, as Debian keeps them.
	if _, err := os.Stat(filepath.Join(sys.Path("/var/lib/sensu-tlsd"), "marker")); err != nil {
		t.Errorf("purge removed the state directory: %v", err)
	}
	mustNS(t, sys, "getent", "passwd", "sensu-tlsd")
	if out, code := inNS(t, sys, "dpkg", "-s", "sensu-tlsd"); code == 0 {
		t.Errorf("dpkg still knows sensu-tlsd after purge:\n%s", out)
	}
	checkRPM(t, rpm1)
}

// checkRPM reads the .rpm with rpm itself: its files, the config file
// rpm keeps on upgrade, and the scripts.
func checkRPM(t *testing.T, rpm string) {
	t.Helper()
	_, err := exec.LookPath("rpm")
	testpeer.NeedPeer(t, err == nil, "rpm missing (Debian package rpm): it reads the .rpm")
	q := func(args ...string) string {
		out, err := exec.Command("rpm", append(args, rpm)...).CombinedOutput()
		if err != nil {
			t.Fatalf("rpm %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	files := q("-qlp")
	for _, want := range []string{"/usr/sbin/sensu-tlsd", "/usr/lib/systemd/system/sensu-tlsd.service", "/etc/sensu/tlsd.yml", "/var/lib/sensu-tlsd", "/usr/share/doc/sensu-tlsd/examples/nonroot.conf"} {
		if !strings.Contains(files, want+"\n") {
			t.Errorf("rpm -qlp lacks %s:\n%s", want, files)
		}
	}
	if cf := q("-qp", "--configfiles"); strings.TrimSpace(cf) != "/etc/sensu/tlsd.yml" {
		t.Errorf("rpm config files: %q, want /etc/sensu/tlsd.yml", cf)
	}
	if v := q("-qp", "--queryformat", "%{VERSION}"); v != "1.0.0" {
		t.Errorf("rpm version %q", v)
	}
	scripts := q("-qp", "--scripts")
	for _, want := range []string{"postinstall scriptlet", "preuninstall scriptlet", "postuninstall scriptlet", "try-restart sensu-tlsd.service"} {
		if !strings.Contains(scripts, want) {
			t.Errorf("rpm scripts lack %q:\n%s", want, scripts)
		}
	}
	if regexp.MustCompile(`(?m)^\s*(systemctl|deb-systemd-helper|deb-systemd-invoke) +(enable|start|restart)`).MatchString(scripts) {
		t.Errorf("rpm scripts enable or start the unit:\n%s", scripts)
	}
	list := q("-qp", "--dump")
	for _, line := range strings.Split(list, "\n") {
		if strings.HasPrefix(line, "/var/lib/sensu-tlsd ") && !strings.Contains(line, " 040700 ") {
			t.Errorf("rpm state directory entry: %s, want mode 040700", line)
		}
	}
}
