package proxy

import (
	"crypto/tls"
	"io"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/internal/testca"
	"github.com/sensu-tlsd/sensu-tlsd/internal/testpeer"
)

func openFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("SKIPPED (peer missing): /proc/self/fd unreadable: %v", err)
	}
	return len(ents)
}

// TestNoLeakAfterManyShortConnections runs short connections of every
// ending (clean, handshake failure, client reset) and checks goroutines
// and descriptors come back to where they were.
func TestNoLeakAfterManyShortConnections(t *testing.T) {
	ca := testca.New(t)
	opt := terminateOpts(t, ca, echoServer(t))
	opt.ParkAfter = 20 * time.Millisecond
	s, addr := startServer(t, opt)
	conf := &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost", ClientSessionCache: tls.NewLRUClientSessionCache(8)}
	warm, _ := tls.Dial("tcp", addr, conf)
	warm.Close()
	testpeer.WaitFor(t, 5*time.Second, "warm-up connection to end", func() bool { return s.Open() == 0 })
	// The parking lot's epoll descriptor and goroutine are created once
	// per process; count them in the baseline.
	if err := lot.start(); err != nil {
		t.Fatal(err)
	}
	fds, goroutines := openFDs(t), runtime.NumGoroutine()

	for i := range 600 {
		switch i % 3 {
		case 0: // clean request and half-close
			c, err := tls.Dial("tcp", addr, conf)
			if err != nil {
				t.Fatal(err)
			}
			c.Write([]byte("ping"))
			c.CloseWrite()
			io.ReadAll(c)
			c.Close()
		case 1: // not TLS at all
			c, err := tlsDialPlain(addr)
			if err != nil {
				t.Fatal(err)
			}
			c.Write([]byte("GET / HTTP/1.0\r\n\r\n"))
			io.ReadAll(c)
			c.Close()
		case 2: // handshake done, then abandoned mid-stream
			c, err := tls.Dial("tcp", addr, conf)
			if err != nil {
				t.Fatal(err)
			}
			c.Write([]byte("half"))
			c.NetConn().Close()
		}
	}
	testpeer.WaitFor(t, 5*time.Second, "all connections to end", func() bool { return s.Open() == 0 })
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > goroutines+1 || openFDs(t) > fds {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			n := runtime.Stack(buf, true)
			t.Fatalf("after 600 connections: %d goroutines (baseline %d), %d fds (baseline %d)\n%s",
				runtime.NumGoroutine(), goroutines, openFDs(t), fds, buf[:n])
		}
		time.Sleep(10 * time.Millisecond)
	}
}
