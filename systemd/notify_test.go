package systemd

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// notifySocket listens where systemd would and returns the messages sent.
func notifySocket(t *testing.T) <-chan string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	out := make(chan string, 16)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			out <- string(buf[:n])
		}
	}()
	return out
}

func expectMessage(t *testing.T, msgs <-chan string, prefix string) string {
	t.Helper()
	select {
	case m := <-msgs:
		if !strings.HasPrefix(m, prefix) {
			t.Fatalf("sd_notify sent %q, want %q", m, prefix)
		}
		return m
	case <-time.After(2 * time.Second):
		t.Fatalf("sd_notify sent nothing, want %q", prefix)
		return ""
	}
}

func TestNotifierSpeaksTheSdNotifyProtocol(t *testing.T) {
	msgs := notifySocket(t)
	n := Notifier{}
	n.Ready()
	expectMessage(t, msgs, "READY=1")
	n.Reloading()
	if m := expectMessage(t, msgs, "RELOADING=1\n"); !strings.Contains(m, "MONOTONIC_USEC=") {
		t.Fatalf("RELOADING without MONOTONIC_USEC: %q", m)
	}
	n.Stopping()
	expectMessage(t, msgs, "STOPPING=1")
}

func TestWatchdogPingsOnlyWhenAsked(t *testing.T) {
	msgs := notifySocket(t)
	t.Setenv("WATCHDOG_USEC", "")
	if err := (Notifier{}).Watchdog(context.Background(), func() {}); err != nil {
		t.Fatalf("watchdog without WATCHDOG_USEC: %v", err)
	}
	t.Setenv("WATCHDOG_USEC", "100000")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- (Notifier{}).Watchdog(ctx, func() {}) }()
	expectMessage(t, msgs, "WATCHDOG=1")
	expectMessage(t, msgs, "WATCHDOG=1")
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestWatchdogStopsPingingWhileTheDaemonIsWedged: a liveness check that
// does not return (a deadlocked manager) stops the pings, so systemd
// restarts the daemon; once it answers again the pings resume.
func TestWatchdogStopsPingingWhileTheDaemonIsWedged(t *testing.T) {
	msgs := notifySocket(t)
	t.Setenv("WATCHDOG_USEC", "100000") // a ping every 50ms
	var wedged sync.Mutex
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		done <- (Notifier{}).Watchdog(ctx, func() {
			wedged.Lock()
			defer wedged.Unlock()
		})
	}()
	expectMessage(t, msgs, "WATCHDOG=1")
	wedged.Lock()
	// A probe already past the lock may still ping once.
	select {
	case <-msgs:
	case <-time.After(100 * time.Millisecond):
	}
	select {
	case m := <-msgs:
		t.Fatalf("watchdog pinged %q while the liveness check was blocked", m)
	case <-time.After(500 * time.Millisecond): // ten ping intervals
	}
	wedged.Unlock()
	expectMessage(t, msgs, "WATCHDOG=1")
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
