package systemd

import (
	"os"
	"testing"

	"github.com/sensu-tlsd/sensu-tlsd/internal/testbin"
)

// TestMain removes the stand-in the tests built (internal/standintest)
// from its private directory when they end.
func TestMain(m *testing.M) { os.Exit(testbin.Main(m, nil)) }
