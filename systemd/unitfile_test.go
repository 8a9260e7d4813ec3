package systemd

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/sensu-tlsd/sensu-tlsd/internal/testpeer"
)

// unitForAnalysis copies sensu-tlsd.service into a temporary directory
// with ExecStart pointing at an executable that exists here (verify checks
// it), changing nothing else.
func unitForAnalysis(t *testing.T) string {
	t.Helper()
	unit, err := os.ReadFile("sensu-tlsd.service")
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(unit), "ExecStart=/usr/sbin/sensu-tlsd ", "ExecStart="+self+" ", 1)
	if text == string(unit) {
		t.Fatal("sensu-tlsd.service has no ExecStart=/usr/sbin/sensu-tlsd line")
	}
	path := filepath.Join(t.TempDir(), "sensu-tlsd.service")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestServiceUnitVerifies(t *testing.T) {
	testpeer.NeedPeer(t, testpeer.HasProgram("systemd-analyze"), "systemd-analyze not installed (Debian package systemd)")
	out, err := exec.Command("systemd-analyze", "verify", unitForAnalysis(t)).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestServiceUnitExposure measures the unit's exposure score and wants the
// one README.md reports, so a hardening change cannot drift from the docs.
func TestServiceUnitExposure(t *testing.T) {
	testpeer.NeedPeer(t, testpeer.HasProgram("systemd-analyze"), "systemd-analyze not installed (Debian package systemd)")
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	documented := regexp.MustCompile(`It scores \*\*([0-9.]+) \(`).FindSubmatch(readme)
	if documented == nil {
		t.Fatal("README.md has no sentence \"It scores **N.N (…)** on `systemd-analyze security`\"")
	}
	out, err := exec.Command("systemd-analyze", "security", "--offline=yes", "--no-pager", unitForAnalysis(t)).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`Overall exposure level for sensu-tlsd.service: ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no exposure level in:\n%s", out)
	}
	t.Logf("systemd-analyze security exposure of sensu-tlsd.service: %s (README.md: %s)", m[1], documented[1])
	if string(m[1]) != string(documented[1]) {
		t.Fatalf("exposure %s, README.md says %s: lower the score again or report the new one in README.md\n%s", m[1], documented[1], out)
	}
}

// TestPolkitRuleAllowsOnlySensuUnits evaluates the rule file with node and
// a polkit object that records results (no polkitd runs in tests): the
// sensu-tlsd user may queue the jobs UnitJob queues (restart, try-restart,
// reload) and send the signals UnitSignal sends (KillUnit, verb kill) to the
// two Sensu units, and nothing else.
func TestPolkitRuleAllowsOnlySensuUnits(t *testing.T) {
	testpeer.NeedPeer(t, testpeer.HasProgram("node"), "node not installed (Debian package nodejs) to evaluate the polkit rule")
	script := `
const src = require("fs").readFileSync(process.argv[1], "utf8");
let rule;
const polkit = {Result: {YES: "yes", NOT_HANDLED: "not-handled"}, addRule: f => { rule = f; }};
new Function("polkit", src)(polkit);
const ask = (user, unit, verb) => rule({id: "org.freedesktop.systemd1.manage-units", lookup: k => ({unit, verb})[k]}, {user});
const out = [
  ask("sensu-tlsd", "sensu-backend.service", "restart"),
  ask("sensu-tlsd", "sensu-agent.service", "try-restart"),
  ask("sensu-tlsd", "sensu-backend.service", "reload"),
  ask("sensu-tlsd", "sensu-backend.service", "kill"),
  ask("sensu-tlsd", "sensu-agent.service", "kill"),
  ask("sensu-tlsd", "sensu-backend.service", "stop"),
  ask("sensu-tlsd", "sensu-backend.service", "start"),
  ask("sensu-tlsd", "sensu-backend.service", "reload-or-try-restart"),
  ask("sensu-tlsd", "sshd.service", "restart"),
  ask("sensu-tlsd", "sshd.service", "kill"),
  ask("mallory", "sensu-backend.service", "restart"),
  ask("mallory", "sensu-backend.service", "kill"),
  rule({id: "org.freedesktop.login1.reboot", lookup: () => undefined}, {user: "sensu-tlsd"}),
];
console.log(out.join(" "));
`
	out, err := exec.Command("node", "-e", script, filepath.Join("polkit", "50-sensu-tlsd.rules")).CombinedOutput()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, out)
	}
	want := "yes yes yes yes yes " + strings.Repeat("not-handled ", 7) + "not-handled"
	if got := strings.TrimSpace(string(out)); got != want {
		t.Fatalf("rule answers %q, want %q", got, want)
	}
}
