package rotate

import (
	"os/exec"
	"strings"
	"testing"
)

// TestRotateImportsNoConsumer keeps the flow one way: nothing under rotate
// may depend on a package that consumes its changes. config/sensu is a
// library (the enrol issuer reads the agent's identity with it); the
// consumer that rewrites Sensu's files is internal/regenerate.
func TestRotateImportsNoConsumer(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "./...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps ./rotate/...: %v\n%s", err, out)
	}
	const mod = "github.com/sensu-tlsd/sensu-tlsd/"
	for _, dep := range strings.Fields(string(out)) {
		for _, consumer := range []string{"proxy", "systemd", "internal/regenerate", "config/migrate", "cmd"} {
			if dep == mod+consumer || strings.HasPrefix(dep, mod+consumer+"/") {
				t.Errorf("rotate depends on the consumer %s", dep)
			}
		}
	}
}
