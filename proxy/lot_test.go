package proxy

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/internal/testca"
	"github.com/sensu-tlsd/sensu-tlsd/internal/testpeer"
)

func parkedCount() int {
	lot.mu.Lock()
	defer lot.mu.Unlock()
	return len(lot.parked)
}

// TestIdleConnectionsParkAndWake: idle relays give up their goroutines
// and come back when either side sends.
func TestIdleConnectionsParkAndWake(t *testing.T) {
	ca := testca.New(t)
	opt := terminateOpts(t, ca, echoServer(t))
	opt.ParkAfter = 50 * time.Millisecond
	s, addr := startServer(t, opt)
	conns := make([]*tls.Conn, 5)
	for i := range conns {
		c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns[i] = c
	}
	testpeer.WaitFor(t, 5*time.Second, "10 pumps parked", func() bool { return parkedCount() >= 10 })
	for round := range 3 {
		for i, c := range conns {
			msg := []byte{byte('a' + i), byte('0' + round)}
			c.Write(msg)
			got := make([]byte, 2)
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.ReadFull(c, got); err != nil || string(got) != string(msg) {
				t.Fatalf("round %d conn %d after parking: got %q, %v", round, i, got, err)
			}
		}
		testpeer.WaitFor(t, 5*time.Second, "pumps parked again", func() bool { return parkedCount() >= 10 })
	}
	for _, c := range conns {
		c.Close()
	}
	testpeer.WaitFor(t, 5*time.Second, "parked connections to end when clients close", func() bool { return s.Open() == 0 })
}

// TestIdleTimeoutClosesParkedRelay: a parked relay has no goroutine to
// notice its sockets closing; the idle sweep must still finish it.
func TestIdleTimeoutClosesParkedRelay(t *testing.T) {
	ca := testca.New(t)
	opt := terminateOpts(t, ca, echoServer(t))
	opt.ParkAfter = 20 * time.Millisecond
	opt.IdleTimeout = 300 * time.Millisecond
	s, addr := startServer(t, opt)
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = c.Read(make([]byte, 1))
	var ne net.Error
	if err == nil || errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("parked idle connection not closed: %v", err)
	}
	testpeer.WaitFor(t, 5*time.Second, "the server to count the connection closed", func() bool { return s.Open() == 0 })
}
