package systemd

import (
	"context"
	"log/slog"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// Notifier reports the daemon's state to systemd over $NOTIFY_SOCKET
// (Type=notify or notify-reload units). Outside systemd every call is a
// no-op, so the daemon runs the same way from a shell.
type Notifier struct {
	Log *slog.Logger
}

func (n Notifier) send(state string) {
	if _, err := daemon.SdNotify(false, state); err != nil && n.Log != nil {
		n.Log.Warn("sd_notify failed", "state", state, "error", err)
	}
}

// Ready says start-up is done: every certificate is loaded and scheduled.
func (n Notifier) Ready() { n.send(daemon.SdNotifyReady) }

// Reloading says a SIGHUP reload started; Ready ends it. systemd's
// notify-reload wants the monotonic timestamp with it.
func (n Notifier) Reloading() {
	n.send(daemon.SdNotifyReloading + "\n" + daemon.SdNotifyMonotonicUsec())
}

// Stopping says a graceful shutdown started.
func (n Notifier) Stopping() { n.send(daemon.SdNotifyStopping) }

// Watchdog pings systemd at half the unit's WatchdogSec until ctx ends,
// each ping only after alive (the manager's liveness check) has returned:
// a ticker alone would keep pinging for a deadlocked daemon. While alive
// hangs nothing is sent, so systemd restarts the daemon once WatchdogSec
// passes. It returns at once when the unit does not ask for a watchdog.
func (n Notifier) Watchdog(ctx context.Context, alive func()) error {
	interval, err := daemon.SdWatchdogEnabled(false)
	if err != nil || interval == 0 {
		return err
	}
	step := interval / 2
	answered := make(chan struct{}, 1)
	for {
		start := time.Now()
		go func() {
			alive()
			answered <- struct{}{}
		}()
		select {
		case <-ctx.Done():
			return nil
		case <-answered:
		case <-time.After(step):
			if n.Log != nil {
				n.Log.Error("the daemon did not answer its liveness check; no watchdog ping until it does, and systemd restarts it after WatchdogSec",
					"waited", step.String(), "watchdog", interval.String())
			}
			select {
			case <-ctx.Done():
				return nil
			case <-answered:
			}
		}
		n.send(daemon.SdNotifyWatchdog)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(step - time.Since(start)):
		}
	}
}
