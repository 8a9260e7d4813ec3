package main

import (
	"net"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDaemonTellsSystemdReadyReloadingStopping listens on a notify socket
// the way systemd does for a Type=notify-reload unit and checks the
// daemon's lifecycle messages, including watchdog pings when asked.
func TestDaemonTellsSystemdReadyReloadingStopping(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	msgs := make(chan string, 64)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			msgs <- string(buf[:n])
		}
	}()
	expect := func(prefix string) {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for {
			select {
			case m := <-msgs:
				if strings.HasPrefix(m, prefix) {
					return
				}
			case <-deadline:
				t.Fatalf("daemon never sent %q to the notify socket", prefix)
			}
		}
	}
	cfg := daemonConfig(t, dir, "1h", "33%", "")
	d := daemonStartEnv(t, dir, cfg, "NOTIFY_SOCKET="+sock, "WATCHDOG_USEC=200000")
	expect("READY=1")
	expect("WATCHDOG=1")
	d.signal(syscall.SIGHUP)
	expect("RELOADING=1")
	expect("READY=1")
	d.signal(syscall.SIGTERM)
	expect("STOPPING=1")
	<-d.done
}
