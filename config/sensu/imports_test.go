package sensu

import (
	"os/exec"
	"strings"
	"testing"
)

// TestSensuIsALibrary: config/sensu is what the rest of the tree asks about
// Sensu, so it depends on nothing that rotates certificates or consumes
// their changes (the consumer that rewrites Sensu's files is
// internal/regenerate).
func TestSensuIsALibrary(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps ./config/sensu: %v\n%s", err, out)
	}
	const mod = "github.com/sensu-tlsd/sensu-tlsd/"
	for _, dep := range strings.Fields(string(out)) {
		for _, up := range []string{"rotate", "internal/event", "internal/regenerate", "systemd", "proxy", "config/migrate", "cmd"} {
			if dep == mod+up || strings.HasPrefix(dep, mod+up+"/") {
				t.Errorf("config/sensu depends on %s", dep)
			}
		}
	}
}
