package proxy

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/internal/testca"
	"github.com/sensu-tlsd/sensu-tlsd/internal/testpeer"
)

func contextWithTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

func terminateOpts(t *testing.T, ca *testca.CA, target string) Options {
	pair := ca.Pair(t, "proxy", "127.0.0.1", "localhost")
	return Options{Name: "t", Mode: &Terminate{TLS: serverTLSConfig(Policy{}, staticSource{&pair}, nil), Target: target}}
}

// TestTerminateRelaysBothWaysWithHalfClose sends more than a buffer's worth
// through TLS to an echo server, half-closes, and reads it all back.
func TestTerminateRelaysBothWaysWithHalfClose(t *testing.T) {
	ca := testca.New(t)
	_, addr := startServer(t, terminateOpts(t, ca, echoServer(t)))
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	payload := make([]byte, 1<<20)
	rand.Read(payload)
	go func() {
		c.Write(payload)
		c.CloseWrite()
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("reading echo: %v", err)
	}
	if !bytes.Equal(got, payload) {
		t.Fatalf("echo returned %d bytes, want the %d sent", len(got), len(payload))
	}
}

func TestTerminateManySmallMessagesConcurrently(t *testing.T) {
	ca := testca.New(t)
	_, addr := startServer(t, terminateOpts(t, ca, echoServer(t)))
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"})
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			buf := make([]byte, 64)
			for j := 0; j < 50; j++ {
				msg := []byte(strings.Repeat("x", 1+j))
				c.Write(msg)
				if _, err := io.ReadFull(c, buf[:len(msg)]); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestOriginateVerifiesTargetAndFailsOver(t *testing.T) {
	ca := testca.New(t)
	pair := ca.Pair(t, "backend", "127.0.0.1")
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadAddr := dead.Addr().String()
	dead.Close()
	_, addr := startServer(t, Options{Name: "o", Mode: &Originate{
		TLS:     clientTLSConfig(Policy{}, ca.Pool(), nil),
		Targets: []string{deadAddr, ln.Addr().String()},
	}})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("hello"))
	buf := make([]byte, 5)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("echo through originate: %q, %v", buf, err)
	}
}

func TestMaxConnsRefusesBeyondLimit(t *testing.T) {
	ca := testca.New(t)
	opt := terminateOpts(t, ca, echoServer(t))
	opt.MaxConns = 1
	s, addr := startServer(t, opt)
	first, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	testpeer.WaitFor(t, 5*time.Second, "the first connection to be open", func() bool { return s.Open() == 1 })
	_, err = tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"})
	if err == nil {
		t.Fatal("second connection beyond max-conns 1 completed a handshake")
	}
}

func TestIdleTimeoutClosesRelay(t *testing.T) {
	ca := testca.New(t)
	opt := terminateOpts(t, ca, echoServer(t))
	opt.IdleTimeout = 200 * time.Millisecond
	_, addr := startServer(t, opt)
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = c.Read(make([]byte, 1))
	var ne net.Error
	if err == nil || errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("idle connection was not closed by the proxy: %v", err)
	}
}

// TestResponseAndCloseReachClientAtOnce: a target that answers and closes
// straight away (HTTP Connection: close) sends data and FIN together; the
// client must get both without waiting for more traffic.
func TestResponseAndCloseReachClientAtOnce(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				c.Read(make([]byte, 512))
				c.Write([]byte("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nok"))
				c.Close()
			}()
		}
	}()
	ca := testca.New(t)
	_, addr := startServer(t, terminateOpts(t, ca, ln.Addr().String()))
	for i := range 30 {
		c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"})
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		got, err := io.ReadAll(c)
		c.Close()
		if err != nil || !bytes.HasSuffix(got, []byte("ok")) {
			t.Fatalf("request %d: got %q, %v; want the response and a clean end", i, got, err)
		}
	}
}
