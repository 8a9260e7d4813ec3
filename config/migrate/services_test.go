package migrate

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/config"
	"github.com/sensu-tlsd/sensu-tlsd/config/sensu"
	"github.com/sensu-tlsd/sensu-tlsd/internal/logbuf"
	"github.com/sensu-tlsd/sensu-tlsd/internal/standintest"
	"github.com/sensu-tlsd/sensu-tlsd/internal/systemdtest"
	"github.com/sensu-tlsd/sensu-tlsd/internal/testca"
	"github.com/sensu-tlsd/sensu-tlsd/internal/testpeer"
)

// A cluster member's backend is down while etcd moves its peer URLs: under
// a real systemd, StopBackend stops the unit, and the RestartBackend after
// it starts it again (the dispatcher alone leaves a stopped unit alone)
// and passes its health gate.
func TestSystemdServicesStopAndStartTheBackend(t *testing.T) {
	sys := systemdtest.Boot(t)
	dir := t.TempDir()
	api, agent := testpeer.FreePort(t), testpeer.FreePort(t)
	backend := filepath.Join(dir, "backend.yml")
	standintest.BackendYML(t, backend, testca.Set{}, api, agent)
	sys.InstallUnit("sensu-backend.service", standintest.Unit(t, backend, filepath.Join(dir, "standin.log")))
	sys.Systemctl("start", "sensu-backend.service")
	testpeer.WaitTCP(t, fmt.Sprintf("127.0.0.1:%d", api))

	cfg := &config.Config{ServiceActions: config.ActionPolicy{SystemdAddress: sys.PrivateSocket()},
		Services: []config.Service{{Name: "sensu-backend", Preset: "sensu-backend", Health: config.Health{Timeout: 20 * time.Second}}}}
	n := &Node{Files: sensu.Files{Backend: backend}}
	s, err := NewSystemdServices(cfg, n, "sensu-tlsd.service", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	state := func() string { return strings.TrimSpace(sys.Property("sensu-backend.service", "ActiveState")) }
	if err := s.Do(ctx, Step{Action: StopBackend}); err != nil {
		t.Fatal(err)
	}
	if got := state(); got != "inactive" {
		t.Fatalf("after StopBackend the unit is %s", got)
	}
	if err := s.Do(ctx, Step{Action: RestartBackend, Files: []string{backend}}); err != nil {
		t.Fatal(err)
	}
	if got := state(); got != "active" {
		t.Fatalf("after RestartBackend the unit is %s", got)
	}
}

// A daemon that systemd does not run is reloaded by the services entry
// --tlsd-service names: the step runs its action (no D-Bus) and the
// release gate after it; a name no entry has is an error naming the flag.
func TestSystemdServicesReloadTheProxyThroughAServicesEntry(t *testing.T) {
	dir := t.TempDir()
	reloaded := filepath.Join(dir, "reloaded")
	cfg := &config.Config{Services: []config.Service{{Name: "sensu-tlsd", Action: "command", Command: []string{"touch", reloaded}}}}
	n := &Node{Files: sensu.Files{Backend: filepath.Join(dir, "backend.yml")}}
	if _, err := NewSystemdServices(cfg, n, "sensu-tlsd.service", "tlsd", nil); err == nil || !strings.Contains(err.Error(), `--tlsd-service "tlsd": no services entry has that name`) {
		t.Fatalf("unknown --tlsd-service: %v", err)
	}
	s, err := NewSystemdServices(cfg, n, "sensu-tlsd.service", "sensu-tlsd", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	free := fmt.Sprintf("127.0.0.1:%d", testpeer.FreePort(t))
	if err := s.Do(ctx, Step{Action: ReloadProxy, Release: []string{free}}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(reloaded); err != nil {
		t.Fatalf("the services entry did not run: %v", err)
	}
}

// The reload migrate adds for the daemon is gated on the ports it takes and
// lets go, so a node without metrics-address is not told to add a health
// check to a services entry its file does not have; an entry of the file
// without one still is.
func TestMigratesOwnReloadIsNotReportedAsUnchecked(t *testing.T) {
	dir := t.TempDir()
	backend := filepath.Join(dir, "backend.yml")
	standintest.BackendYML(t, backend, testca.Set{}, testpeer.FreePort(t), testpeer.FreePort(t))
	var logs logbuf.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	cfg := &config.Config{Services: []config.Service{{Name: "web", Unit: "web.service", Action: "restart"}}}
	s, err := NewSystemdServices(cfg, &Node{Files: sensu.Files{Backend: backend}}, "sensu-tlsd.service", "", log)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := logs.String(); strings.Contains(got, "migrate-sensu-tlsd") || !strings.Contains(got, "services[0]") {
		t.Errorf("warnings, want one for services[0] (web) and none for migrate's own reload:\n%s", got)
	}
}
