package proxy

import (
	"fmt"
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/internal/testca"
)

// BenchmarkAcceptToRelay is one client connection through the proxy from
// accept to a relayed byte and back: sniff, admission, target dial and
// relay setup, with no TLS on the client side so the proxy's own cost
// shows. B/op and allocs/op count the whole process, server included.
func BenchmarkAcceptToRelay(b *testing.B) {
	ca := testca.New(b)
	tlsTarget := func() string { addr, _ := tlsEchoTarget(b, ca); return addr }
	for _, c := range []struct {
		name string
		mode func() Mode
	}{
		{"dual-plaintext", func() Mode { return &Dual{Target: echoServer(b), AllowPlaintext: true} }},
		{"originate", func() Mode {
			return &Originate{TLS: clientTLSConfig(Policy{}, ca.Pool(), nil), Targets: []string{tlsTarget(), tlsTarget()}, Spread: true}
		}},
	} {
		_, addr := startServer(b, Options{Name: c.name, Mode: c.mode()})
		hello := []byte("GET / HTTP/1.1\r\n\r\n")
		one := func() error {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				return err
			}
			defer conn.Close()
			if _, err := conn.Write(hello); err != nil {
				return err
			}
			_, err = io.ReadFull(conn, make([]byte, len(hello)))
			return err
		}
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := one(); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(c.name+"-parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := one(); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkAgentBookTurnover fills one listener's agent book and keeps it
// turning over, each new name evicting the oldest (a client inventing
// names, or bench/leak.sh), and reports the heap the full book holds.
func BenchmarkAgentBookTurnover(b *testing.B) {
	now := time.Now()
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		var book agentBook
		for i := range 2 * maxAgents {
			book.record("proxy", AgentHello{Namespace: "default", Name: fmt.Sprintf("churn-%d", i)}, TransportTLS, now)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/1e6, "MB-heap")
		runtime.KeepAlive(&book)
	}
}
