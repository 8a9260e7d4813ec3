package systemdtest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/internal/testpeer"
)

// systemdBinary is PID 1 of the booted test system.
const systemdBinary = "/lib/systemd/systemd"

// TestTarget is the unit the test systemd boots into. It pulls in nothing:
// a normal boot would run the host's sysinit units (systemd-tmpfiles
// empties /tmp, systemd-sysctl, etcd, nginx …) against the host's file
// system and network, which the mount and PID namespaces do not isolate.
const TestTarget = "sensu-tlsd-test.target"

// maskedUnits are masked as well, so that even a unit that pulls in the
// default dependencies cannot start one of them.
var maskedUnits = []string{
	"sysinit.target", "basic.target", "multi-user.target", "graphical.target", "getty.target", "timers.target",
	"systemd-tmpfiles-setup.service", "systemd-tmpfiles-setup-dev.service", "systemd-tmpfiles-clean.service",
	"systemd-tmpfiles-clean.timer", "systemd-sysctl.service", "systemd-binfmt.service", "systemd-modules-load.service",
	"systemd-remount-fs.service", "systemd-update-utmp.service", "systemd-random-seed.service",
	"systemd-journald.service", "systemd-journald.socket", "systemd-journald-dev-log.socket",
	"systemd-journald-audit.socket", "systemd-journal-flush.service", "systemd-udevd.service",
	"systemd-udev-trigger.service", "systemd-sysusers.service", "systemd-logind.service",
	"dbus.service", "dbus.socket", "etcd.service", "etcd2.service", "nginx.service", "haproxy.service",
	"postgresql.service", "stunnel.target", "console-getty.service", "getty@.service", "e2scrub_reap.service",
	// The network namespace is the host's: nothing may configure it.
	"network.target", "network-online.target", "network-pre.target", "networking.service",
	"systemd-networkd.service", "systemd-networkd-wait-online.service", "systemd-resolved.service",
	"NetworkManager.service", "NetworkManager-wait-online.service", "ifupdown-wait-online.service",
	"systemd-timesyncd.service", "systemd-pstore.service", "apt-daily.timer", "apt-daily-upgrade.timer",
	"dpkg-db-backup.timer", "e2scrub_all.timer", "fstrim.timer", "man-db.timer", "remote-fs.target",
}

// Available reports whether a real systemd can be booted here (root,
// systemd, unshare, nsenter) and, if not, why.
func Available() (bool, string) {
	if os.Geteuid() != 0 {
		return false, "booting systemd in a private PID and mount namespace needs root"
	}
	if _, err := os.Stat(systemdBinary); err != nil {
		return false, systemdBinary + " missing (Debian package systemd)"
	}
	for _, p := range []string{"unshare", "nsenter", "mount"} {
		if _, err := exec.LookPath(p); err != nil {
			return false, p + " missing (Debian package util-linux)"
		}
	}
	if _, err := exec.LookPath("socat"); err != nil {
		return false, "socat missing (Debian package socat): it relays D-Bus into the test systemd's namespace"
	}
	return true, ""
}

// System is a systemd running as PID 1 of a private PID and mount
// namespace, with its own tmpfs on /run; everything else of the file
// system is the host's, so units can run binaries and read files the test
// prepared under t.TempDir.
type System struct {
	// PID is systemd's process id as the test sees it.
	PID  int
	t    testing.TB
	cmd  *exec.Cmd
	done chan struct{}
	// relay is where a socat inside the namespace forwards to systemd's
	// private socket. systemd refuses peers whose pid it cannot see, and
	// the test process lives outside the PID namespace.
	relay     string
	relayDone chan struct{}
	relayCmd  *exec.Cmd
}

// Boot starts systemd and waits until it has reached TestTarget. It stops
// the system with `systemctl exit` when the test ends. Where systemd
// cannot be booted (see Available) the test skips or fails, as
// testpeer.NeedPeer; without root it skips, as testpeer.NeedRoot.
func Boot(t testing.TB) *System {
	t.Helper()
	testpeer.NeedRoot(t, "booting systemd in a private PID and mount namespace needs root")
	ok, why := Available()
	testpeer.NeedPeer(t, ok, why)
	staging := t.TempDir()
	target := "[Unit]\nDescription=sensu-tlsd tests\nDefaultDependencies=no\n"
	if err := os.WriteFile(filepath.Join(staging, TestTarget), []byte(target), 0o644); err != nil {
		t.Fatal(err)
	}
	masks := filepath.Join(staging, "masks")
	if err := os.Mkdir(masks, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, u := range maskedUnits {
		if err := os.Symlink("/dev/null", filepath.Join(masks, u)); err != nil {
			t.Fatal(err)
		}
	}
	script := fmt.Sprintf(`set -e
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /run/systemd/system /run/systemd/system.control
cp %[1]s/%[2]s /run/systemd/system/
cp -P %[1]s/masks/* /run/systemd/system.control/
exec %[3]s --system --unit=%[2]s --log-target=console --log-level=notice
`, staging, TestTarget, systemdBinary)
	cmd := exec.Command("unshare", "--pid", "--fork", "--mount", "--mount-proc", "--propagation", "private", "sh", "-c", script)
	var console bytes.Buffer
	cmd.Stdout, cmd.Stderr = &console, &console
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &System{t: t, cmd: cmd, done: make(chan struct{}), relay: filepath.Join(staging, "systemd-private.sock")}
	go func() { cmd.Wait(); close(s.done) }()
	t.Cleanup(s.shutdown)

	start := time.Now()
	deadline := start.Add(60 * time.Second)
	for {
		if s.PID == 0 {
			s.PID = childOf(cmd.Process.Pid)
		}
		if s.PID != 0 && isSystemd(s.PID) {
			if _, err := os.Stat(fmt.Sprintf("/proc/%d/root/run/systemd/private", s.PID)); err == nil {
				out, _ := s.systemctl("is-system-running")
				state := strings.TrimSpace(out)
				// degraded is fine: a masked unit something wanted counts.
				if state == "running" || state == "degraded" {
					t.Logf("systemd (pid %d) up in %s: %s", s.PID, time.Since(start).Round(time.Millisecond), state)
					s.startRelay()
					return s
				}
			}
		}
		select {
		case <-s.done:
			t.Fatalf("systemd ended while booting: %v\n%s", cmd.ProcessState, console.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("systemd not up within 60s\n%s", console.String())
		}
	}
}

// childOf returns the first child of pid, 0 if none yet.
func childOf(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	c, _ := strconv.Atoi(f[0])
	return c
}

func isSystemd(pid int) bool {
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	return err == nil && strings.HasSuffix(exe, "/systemd")
}

// PrivateSocket is a socket that reaches systemd's private D-Bus socket
// (through a relay inside the namespace).
func (s *System) PrivateSocket() string { return s.relay }

// startRelay runs socat inside the namespace; it dies with the namespace.
func (s *System) startRelay() {
	s.t.Helper()
	relay := exec.Command("nsenter", "-t", strconv.Itoa(s.PID), "-m", "-p",
		"socat", "UNIX-LISTEN:"+s.relay+",fork,mode=0600", "UNIX-CONNECT:/run/systemd/private")
	if err := relay.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.relayCmd, s.relayDone = relay, make(chan struct{})
	go func() { relay.Wait(); close(s.relayDone) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(s.relay); err == nil {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatal("socat relay to systemd's private socket did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Systemctl runs systemctl inside the namespace and fails the test on a
// non-zero exit.
func (s *System) Systemctl(args ...string) string {
	s.t.Helper()
	out, err := s.systemctl(args...)
	if err != nil {
		s.t.Fatalf("systemctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(out)
}

// SystemctlStatus runs systemctl inside the namespace and returns its
// output and exit status without judging them (is-active exits 3).
func (s *System) SystemctlStatus(args ...string) (string, int) {
	out, err := s.systemctl(args...)
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		code = -1
	}
	return strings.TrimSpace(out), code
}

func (s *System) systemctl(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	all := append([]string{"-t", strconv.Itoa(s.PID), "-m", "-p", "systemctl", "--no-pager"}, args...)
	out, err := exec.CommandContext(ctx, "nsenter", all...).CombinedOutput()
	return string(out), err
}

// Property reads one unit property (systemctl show -p NAME --value).
func (s *System) Property(unit, name string) string {
	s.t.Helper()
	return s.Systemctl("show", "-p", name, "--value", unit)
}

// InstallUnit writes a unit into the namespace's /run/systemd/system and
// reloads systemd. Units should say DefaultDependencies=no (the default
// dependencies are masked) and log to a file (journald is masked too).
func (s *System) InstallUnit(name, content string) {
	s.t.Helper()
	path := s.Path("/run/systemd/system/" + name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		s.t.Fatal(err)
	}
	s.Systemctl("daemon-reload")
}

// Path is p inside the namespace as the test process reaches it. Only /run
// differs from the host: write there what units with PrivateTmp=yes must
// see.
func (s *System) Path(p string) string {
	return fmt.Sprintf("/proc/%d/root%s", s.PID, p)
}

// InstallDropIn writes UNIT.d/NAME.conf and reloads systemd.
func (s *System) InstallDropIn(unit, name, content string) {
	s.t.Helper()
	dir := s.Path("/run/systemd/system/" + unit + ".d")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		s.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".conf"), []byte(content), 0o644); err != nil {
		s.t.Fatal(err)
	}
	s.Systemctl("daemon-reload")
}

// shutdown asks systemd to exit, which ends the namespace and every unit
// in it; a kill follows if it does not within 30 seconds. The relay goes
// first: killed by the namespace's end it would stay a zombie of nsenter,
// outside the namespace, and systemd-shutdown would wait for it.
func (s *System) shutdown() {
	if s.relayCmd != nil {
		if socat := childOf(s.relayCmd.Process.Pid); socat != 0 {
			syscall.Kill(socat, syscall.SIGTERM)
		}
		select {
		case <-s.relayDone:
		case <-time.After(5 * time.Second):
			s.t.Errorf("the socat relay did not stop on SIGTERM")
		}
	}
	if s.PID != 0 {
		s.systemctl("exit")
	}
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		s.t.Errorf("systemd did not exit within 30s of systemctl exit; killing it")
		s.cmd.Process.Kill()
		<-s.done
	}
}
