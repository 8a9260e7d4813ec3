package rotate

import (
	"context"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/internal/certstate"
	"github.com/sensu-tlsd/sensu-tlsd/internal/event"
	"github.com/sensu-tlsd/sensu-tlsd/internal/logbuf"
)

// TestStateFileIsAsPrivateAsTheKey: state.json can hold an issuer's error
// output, so it is 0600, or 0640 to the group the key is shared with.
func TestStateFileIsAsPrivateAsTheKey(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		group string
		mode  uint32
	}{{"", 0o600}, {strconv.Itoa(os.Getgid()), 0o640}} {
		p := Plan{Name: "backend-1", Dir: dir}
		p.Perms.Group = tc.group
		if err := writeState(p, certstate.State{Name: "backend-1", LastError: "exec issuer failed"}); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(certstate.File(dir))
		if err != nil {
			t.Fatal(err)
		}
		if got := uint32(fi.Mode().Perm()); got != tc.mode {
			t.Errorf("group %q: state.json mode %04o, want %04o", tc.group, got, tc.mode)
		}
	}
}

// TestCorruptStateFileIsLoggedWithWhatIsLost: a state.json that does not
// parse is replaced, and the log names the file and what went with it (a
// serial consumers refused may be installed again) instead of forgetting
// it silently.
func TestCorruptStateFileIsLoggedWithWhatIsLost(t *testing.T) {
	cfg := testConfig(t, time.Hour, "")
	p := mustPlans(t, cfg)[0]
	if err := os.MkdirAll(p.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certstate.File(p.Dir), []byte(`{"name": "backend-1", "rejected_serial": `), 0o600); err != nil {
		t.Fatal(err)
	}
	var log logbuf.Buffer
	m := NewManager(&event.Bus{}, NewMetrics(), slog.New(slog.NewTextHandler(&log, nil)))
	if _, err := m.RenewOnce(context.Background(), p, RenewOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"level=WARN", "state file is unreadable", "serial consumers rejected", certstate.File(p.Dir)} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, log.String())
		}
	}
	if _, err := certstate.Read(certstate.File(p.Dir)); err != nil {
		t.Fatalf("the state file was not replaced: %v", err)
	}
}
