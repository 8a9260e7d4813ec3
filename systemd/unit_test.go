package systemd

import (
	"bufio"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/internal/testpeer"
)

// A D-Bus peer that resets the connection in the middle of a message (it
// closes with bytes unread, as a systemd re-executing may) ends the
// connection with an error: the read that fails with ECONNRESET must not
// panic in godbus's reader goroutine, which its unix transport did
// (ReadMsgUnix's -1 count handed to a bytes.Buffer), taking the whole
// process down.
func TestBusConnectionResetByThePeerDoesNotPanic(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bus")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		// The server side of EXTERNAL auth, then a method call left
		// unread: closing with unread bytes resets the connection.
		r := bufio.NewReader(c)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			switch {
			case strings.HasPrefix(strings.TrimPrefix(line, "\x00"), "AUTH EXTERNAL"):
				c.Write([]byte("OK 0123456789abcdef0123456789abcdef\r\n"))
			case strings.HasPrefix(strings.TrimPrefix(line, "\x00"), "AUTH"):
				c.Write([]byte("REJECTED EXTERNAL\r\n"))
			case strings.HasPrefix(line, "NEGOTIATE_UNIX_FD"):
				c.Write([]byte("AGREE_UNIX_FD\r\n"))
			case strings.HasPrefix(line, "BEGIN"):
				time.Sleep(200 * time.Millisecond) // the call arrives, unread
				// The first 16 bytes of a reply (little endian, method
				// return, body 0, serial 1, 8 bytes of header fields),
				// then the reset in the middle of the message.
				c.Write([]byte{'l', 2, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 8, 0, 0, 0})
				time.Sleep(100 * time.Millisecond)
				return
			}
		}
	}()
	conn, err := dialBus(context.Background(), path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	call := conn.BusObject().Go("org.freedesktop.DBus.Peer.Ping", 0, nil)
	select {
	case <-call.Done:
		if call.Err == nil {
			t.Fatal("a call on a connection the peer reset succeeded")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a call on a connection the peer reset did not end")
	}
}

// On a real dbus-daemon, the bus named by DBUS_SYSTEM_BUS_ADDRESS is the
// one dialled, and Hello gives the connection its unique name.
func TestDialBusSaysHelloToARealBus(t *testing.T) {
	bin, err := exec.LookPath("dbus-daemon")
	testpeer.NeedPeer(t, err == nil, "dbus-daemon not on PATH (apt-get install dbus)")
	path := filepath.Join(t.TempDir(), "bus")
	daemon := exec.Command(bin, "--session", "--nofork", "--address=unix:path="+path)
	if err := daemon.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { daemon.Process.Kill(); daemon.Wait() })
	testpeer.WaitFor(t, 10*time.Second, "dbus-daemon's socket", func() bool { _, err := os.Stat(path); return err == nil })
	t.Setenv("DBUS_SYSTEM_BUS_ADDRESS", "unix:path="+path+",guid=0123")
	if got := systemBusPath(); got != path {
		t.Fatalf("system bus path %q, want %q", got, path)
	}
	conn, err := dialBus(context.Background(), systemBusPath(), true)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if names := conn.Names(); len(names) == 0 || !strings.HasPrefix(names[0], ":") {
		t.Errorf("names after Hello: %v, want a unique name", names)
	}
}
