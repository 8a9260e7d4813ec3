package proxytest

import (
	"crypto/tls"
	"io"
	"sync/atomic"
	"testing"
)

// CountingTLSEcho is a TLS echo server on loopback serving pair, a cluster
// member for originate tests, and the count of connections it accepted.
func CountingTLSEcho(t testing.TB, pair tls.Certificate) (string, *atomic.Int64) {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var n atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	return ln.Addr().String(), &n
}
