package migrate

import (
	"os"
	"testing"

	"github.com/sensu-tlsd/sensu-tlsd/internal/testbin"
)

// TestMain gives the systemd test its private copy of the stand-in backend.
func TestMain(m *testing.M) { os.Exit(testbin.Main(m, nil)) }
