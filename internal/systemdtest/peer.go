package systemdtest

import (
	"os"
	"testing"
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
