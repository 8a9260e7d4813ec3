package testpeer

import (
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// RequirePeersEnv is the variable CI (.ci/run) sets to 1 so that a test
// whose peer is missing fails instead of skipping.
const RequirePeersEnv = "SENSU_TLSD_REQUIRE_PEERS"

// NeedPeer skips the test loudly when a real peer (a program, root, a
// port) is missing, or fails it when SENSU_TLSD_REQUIRE_PEERS=1, so CI
// never passes a test that did not run.
func NeedPeer(t testing.TB, ok bool, why string) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv(RequirePeersEnv) == "1" {
		t.Fatalf("required peer missing: %s", why)
	}
	t.Skipf("SKIPPED (peer missing): %s", why)
}

// NeedRoot skips the test loudly when it does not run as root, naming
// what needs root, whatever SENSU_TLSD_REQUIRE_PEERS says: the non-root
// pass of `make test` runs the suite without root on purpose.
func NeedRoot(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("SKIPPED (not root): %s", why)
	}
}

// HasProgram reports whether program is on PATH, for NeedPeer.
func HasProgram(program string) bool {
	_, err := exec.LookPath(program)
	return err == nil
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// FreeAddr is FreePort as an address: 127.0.0.1:PORT.
func FreeAddr(t testing.TB) string {
	t.Helper()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePort(t)))
}

// WaitTCP waits up to 30 seconds until address accepts a connection.
func WaitTCP(t testing.TB, address string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", address, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never accepted: %v", address, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// WaitFor polls cond every 20ms for up to d and fails the test, naming
// what it waited for, if cond never holds.
func WaitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
