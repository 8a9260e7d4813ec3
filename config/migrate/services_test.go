package migrate

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/config"
	"github.com/sensu-tlsd/sensu-tlsd/config/sensu"
	"github.com/sensu-tlsd/sensu-tlsd/internal/cluster"
	"github.com/sensu-tlsd/sensu-tlsd/internal/etcdtest"
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

// A backend systemd does not run (action command, under a supervisor that
// restarts it as Restart=always would): StopBackend runs its stop-command,
// which holds the supervisor, and the RestartBackend after it runs its
// command, which starts it again, and passes the preset's health gate.
// Without a stop-command StopBackend refuses, naming the key.
func TestCommandServicesStopAndStartTheBackend(t *testing.T) {
	dir := t.TempDir()
	api, agent := testpeer.FreePort(t), testpeer.FreePort(t)
	backend := filepath.Join(dir, "backend.yml")
	standintest.BackendYML(t, backend, testca.Set{}, api, agent)
	pid, hold := filepath.Join(dir, "backend.pid"), filepath.Join(dir, "hold")
	supervisor := exec.Command("/bin/sh", "-c", fmt.Sprintf(`while :; do
	[ -e %[1]s ] || { %[2]s -c %[3]s & echo $! >%[4]s; wait $!; }
	sleep 0.05
done`, hold, standintest.Binary(t), backend, pid))
	supervisor.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := supervisor.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(-supervisor.Process.Pid, syscall.SIGKILL); supervisor.Wait() })
	address := fmt.Sprintf("127.0.0.1:%d", api)
	testpeer.WaitTCP(t, address)

	stopOld := fmt.Sprintf("p=$(cat %[1]s); kill $p 2>/dev/null; while kill -0 $p 2>/dev/null; do sleep 0.02; done", pid)
	svc := config.Service{Name: "sensu-backend", Preset: "sensu-backend", Action: "command",
		Command: []string{"/bin/sh", "-c", "rm -f " + hold + "; " + stopOld}, Health: config.Health{Timeout: 20 * time.Second}}
	n := &Node{Files: sensu.Files{Backend: backend}}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	s, err := NewSystemdServices(&config.Config{Services: []config.Service{svc}}, n, "sensu-tlsd.service", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	err = s.Do(ctx, Step{Action: StopBackend})
	if want := "services entry sensu-backend has action command and no stop-command"; err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("StopBackend without a stop-command: %v, want %q", err, want)
	}
	s.Close()

	svc.StopCommand = []string{"/bin/sh", "-c", "touch " + hold + "; " + stopOld}
	s, err = NewSystemdServices(&config.Config{Services: []config.Service{svc}}, n, "sensu-tlsd.service", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Do(ctx, Step{Action: StopBackend}); err != nil {
		t.Fatal(err)
	}
	if c, err := net.Dial("tcp", address); err == nil {
		c.Close()
		t.Fatal("the backend still answers after StopBackend")
	}
	if _, err := os.Stat(hold); err != nil {
		t.Fatalf("the stop-command did not run: %v", err)
	}
	if err := s.Do(ctx, Step{Action: RestartBackend, Files: []string{backend}}); err != nil {
		t.Fatal(err)
	}
	testpeer.WaitTCP(t, address)
}

// On a cluster member, migrate restarts sensu-backend in the member's turn,
// which holds the cluster's restart lock, through the daemon's
// sensu-backend service, which takes that lock around every restart: it
// must not wait for it again (it waited out restart-lock-timeout while its
// own turn held the lock, and the phase failed).
func TestAClusterMembersRestartDoesNotWaitForItsOwnTurnsLock(t *testing.T) {
	c := etcdtest.Start(t, 3)
	m := c.Members[0]
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n, member := openMember(t, ctx, m)
	// The restart itself is not the point: etcd /health is the gate.
	cfg := &config.Config{ServiceActions: config.ActionPolicy{RestartLockTimeout: 5 * time.Second},
		Services: []config.Service{{Name: "sensu-backend", Preset: "sensu-backend", Action: "command", Command: []string{"/bin/true"},
			Health: config.Health{URL: m.ClientURL(t) + "/health", Timeout: 20 * time.Second}}}}
	s, err := NewSystemdServices(cfg, n, "sensu-tlsd.service", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := member.restartBackend(ctx, n, s, Step{Action: RestartBackend, Files: []string{m.BackendYML}}); err != nil {
		t.Fatal(err)
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

// recordedServices notes when each step ran.
type recordedServices struct {
	mu    sync.Mutex
	steps []Action
	at    []time.Time
}

func (r *recordedServices) Do(_ context.Context, s Step) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.steps, r.at = append(r.steps, s.Action), append(r.at, time.Now())
	return nil
}

// On a cluster member, a phase's steps wait for the member's turn before
// the first of them: the daemon does not let the public ports go (phase 3,
// the rollback to 0) while another member holds the restart lock, which
// would leave the ports serving nothing until that member is done.
func TestAMembersStepsWaitForItsTurnBeforeTheFirst(t *testing.T) {
	c := etcdtest.Start(t, 3)
	m := c.Members[0]
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n, member := openMember(t, ctx, m)
	_, other := openMember(t, ctx, c.Members[1])
	unlock, err := other.Cluster.Lock(ctx, cluster.RestartLock, 0)
	if err != nil {
		t.Fatal(err)
	}

	rec := &recordedServices{}
	o := Options{Services: rec, Member: member}
	ran := make(chan error, 1)
	go func() {
		ran <- o.run(ctx, n, []Step{{Action: ReloadProxy}, {Action: RestartBackend, Files: []string{m.BackendYML}}}, &Result{})
	}()
	time.Sleep(500 * time.Millisecond) // the steps are waiting for the lock now, or never were
	released := time.Now()
	if err := unlock(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-ran; err != nil {
		t.Fatal(err)
	}
	if len(rec.steps) != 2 || rec.steps[0] != ReloadProxy || rec.steps[1] != RestartBackend {
		t.Fatalf("steps done: %v", rec.steps)
	}
	if rec.at[0].Before(released) {
		t.Errorf("the daemon let the ports go %s before the other member released the restart lock", released.Sub(rec.at[0]))
	}
}

// openMember is m's node and its connection to the cluster, as migrate
// opens them; the connection closes when the test ends.
func openMember(t *testing.T, ctx context.Context, m *etcdtest.Member) (*Node, *Member) {
	t.Helper()
	n := &Node{Files: sensu.Files{Backend: m.BackendYML}}
	member, err := OpenMember(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { member.Cluster.Close() })
	return n, member
}
