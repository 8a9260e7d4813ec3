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
// and returns at once when the unit does not ask for a watchdog.
func (n Notifier) Watchdog(ctx context.Context) error {
	interval, err := daemon.SdWatchdogEnabled(false)
	if err != nil || interval == 0 {
		return err
	}
	t := time.NewTicker(interval / 2)
	defer t.Stop()
	for {
		n.send(daemon.SdNotifyWatchdog)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
