package systemd

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	godbus "github.com/godbus/dbus/v5"
)

// UnitManager is the part of systemd's D-Bus API the unit actions use;
// *dbus.Conn from go-systemd implements it.
type UnitManager interface {
	RestartUnitContext(ctx context.Context, name, mode string, ch chan<- string) (int, error)
	TryRestartUnitContext(ctx context.Context, name, mode string, ch chan<- string) (int, error)
	ReloadUnitContext(ctx context.Context, name, mode string, ch chan<- string) (int, error)
	KillUnitWithTarget(ctx context.Context, name string, target sddbus.Who, signal int32) error
	GetUnitPropertyContext(ctx context.Context, unit, property string) (*sddbus.Property, error)
}

// Connect opens a connection to systemd. address "" means the system bus
// (which lets polkit authorise a non-root sensu-tlsd) with a fallback to
// systemd's private socket when running as root, as go-systemd's
// NewWithContext does; any other value is the path of a systemd private
// socket, as the tests use for a systemd booted in a namespace.
func Connect(ctx context.Context, address string) (*sddbus.Conn, error) {
	if address != "" {
		return sddbus.NewConnection(func() (*godbus.Conn, error) { return dialBus(ctx, address, false) })
	}
	conn, err := sddbus.NewConnection(func() (*godbus.Conn, error) { return dialBus(ctx, systemBusPath(), true) })
	if err != nil && os.Geteuid() == 0 {
		return sddbus.NewConnection(func() (*godbus.Conn, error) { return dialBus(ctx, systemdPrivateSocket, false) })
	}
	return conn, err
}

// systemdPrivateSocket is systemd's peer-to-peer D-Bus socket, root only.
const systemdPrivateSocket = "/run/systemd/private"

// systemBusPath is the system bus socket: DBUS_SYSTEM_BUS_ADDRESS's
// unix:path= when it names one, else the well-known path.
func systemBusPath() string {
	for _, part := range strings.Split(os.Getenv("DBUS_SYSTEM_BUS_ADDRESS"), ";") {
		if rest, ok := strings.CutPrefix(part, "unix:path="); ok {
			path, _, _ := strings.Cut(rest, ",")
			return path
		}
	}
	return "/var/run/dbus/system_bus_socket"
}

// dialBus connects to the D-Bus socket at path with EXTERNAL auth, and
// Hello on a bus (systemd's private socket is peer to peer and has none).
// It goes through godbus's generic stream transport, not its unix one: the
// unix transport reads with ReadMsgUnix, which returns -1 bytes with an
// error (a connection reset when systemd re-executes or dbus-daemon
// restarts), and godbus passes that count to a bytes.Buffer, which panics
// in godbus's reader goroutine and takes the daemon down. A net.Conn Read
// returns 0 with the error, which godbus handles. sensu-tlsd passes no
// file descriptors, the one thing only the unix transport carries.
func dialBus(ctx context.Context, path string, hello bool) (*godbus.Conn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, err
	}
	conn, err := godbus.NewConn(nc, godbus.WithContext(ctx))
	if err != nil {
		nc.Close()
		return nil, err
	}
	if err := conn.Auth([]godbus.Auth{godbus.AuthExternal(strconv.Itoa(os.Getuid()))}); err != nil {
		conn.Close()
		return nil, fmt.Errorf("authenticating to D-Bus at %s: %w", path, err)
	}
	if hello {
		if err := conn.Hello(); err != nil {
			conn.Close()
			return nil, fmt.Errorf("D-Bus Hello at %s: %w", path, err)
		}
	}
	return conn, nil
}

// JobMode is the systemd job an action queues for a unit.
type JobMode string

const (
	JobRestart    JobMode = "restart"
	JobTryRestart JobMode = "try-restart" // restart only when running
	JobReload     JobMode = "reload"
)

// UnitJob queues a restart, try-restart or reload job for a unit and waits
// for its result. With OnlyIfRunning a unit that is inactive is left
// alone, so a service an operator stopped on purpose stays stopped; a
// failed unit is restarted (try-restart mode too), because a crash is not
// a decision to keep it down, and the rollback after a certificate the
// service could not start with must bring it back.
type UnitJob struct {
	Systemd       UnitManager
	Unit          string
	Mode          JobMode
	OnlyIfRunning bool
}

func (a UnitJob) String() string { return string(a.Mode) + " " + a.Unit }

// Run queues the job and waits until systemd reports it done.
func (a UnitJob) Run(ctx context.Context, _ Batch) (Outcome, error) {
	mode := a.Mode
	if a.OnlyIfRunning || mode == JobTryRestart {
		state, err := activeState(ctx, a.Systemd, a.Unit)
		if err != nil {
			return Outcome{}, err
		}
		switch state {
		case "active", "reloading", "activating":
		case "failed":
			if mode == JobTryRestart {
				mode = JobRestart // systemd's try-restart skips failed units
			}
		default:
			return Outcome{Detail: fmt.Sprintf("%s is %s; left alone (only-if-running)", a.Unit, state)}, nil
		}
	}
	queue := map[JobMode]func(context.Context, string, string, chan<- string) (int, error){
		JobRestart:    a.Systemd.RestartUnitContext,
		JobTryRestart: a.Systemd.TryRestartUnitContext,
		JobReload:     a.Systemd.ReloadUnitContext,
	}[mode]
	if queue == nil {
		return Outcome{}, fmt.Errorf("unit %s: unknown job %q (want restart, try-restart or reload)", a.Unit, a.Mode)
	}
	done := make(chan string, 1)
	if _, err := queue(ctx, a.Unit, "replace", done); err != nil {
		return Outcome{}, fmt.Errorf("%s: queueing the job: %w", a, err)
	}
	select {
	case result := <-done:
		if result != "done" {
			return Outcome{}, fmt.Errorf("%s: systemd job ended %q (see journalctl -u %s)", a, result, a.Unit)
		}
		return Outcome{Acted: true, Detail: a.String() + ": job done"}, nil
	case <-ctx.Done():
		return Outcome{}, fmt.Errorf("%s: waiting for the job: %w", a, ctx.Err())
	}
}

// UnitSignal sends a signal to a unit's main process, found by systemd, so
// no pid file is needed.
type UnitSignal struct {
	Systemd UnitManager
	Unit    string
	Signal  syscall.Signal
}

func (a UnitSignal) String() string {
	return fmt.Sprintf("signal %s to %s", signalName(a.Signal), a.Unit)
}

// Run signals the main process of a running unit; a stopped unit is left
// alone.
func (a UnitSignal) Run(ctx context.Context, _ Batch) (Outcome, error) {
	state, err := activeState(ctx, a.Systemd, a.Unit)
	if err != nil {
		return Outcome{}, err
	}
	if state != "active" && state != "reloading" {
		return Outcome{Detail: fmt.Sprintf("%s is %s; not signalled", a.Unit, state)}, nil
	}
	if err := a.Systemd.KillUnitWithTarget(ctx, a.Unit, sddbus.Main, int32(a.Signal)); err != nil {
		return Outcome{}, fmt.Errorf("%s: %w", a, err)
	}
	return Outcome{Acted: true, Detail: a.String()}, nil
}

func activeState(ctx context.Context, m UnitManager, unit string) (string, error) {
	p, err := m.GetUnitPropertyContext(ctx, unit, "ActiveState")
	if err != nil {
		return "", fmt.Errorf("unit %s: reading ActiveState: %w", unit, err)
	}
	s, ok := p.Value.Value().(string)
	if !ok {
		return "", fmt.Errorf("unit %s: ActiveState is %v, not a string", unit, p.Value)
	}
	return s, nil
}
