package proxytest

import (
	"net"
	"syscall"
	"testing"
	"time"
)

// Blackhole is a loopback address whose SYNs are dropped: a listener with
// a backlog of one that never accepts, its queue already full. A dial to
// it hangs until its timeout, like a cluster member that is powered off.
func Blackhole(t testing.TB) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := (&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: sa.(*syscall.SockaddrInet4).Port}).String()
	fill, err := net.Dial("tcp", addr) // takes the one place in the accept queue
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fill.Close() })
	if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
		c.Close()
		t.Fatalf("the kernel accepted a second connection on the full backlog-0 listener %s; it does not drop SYNs here", addr)
	}
	return addr
}
