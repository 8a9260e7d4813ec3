package proxy

import (
	"crypto/tls"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sensu-tlsd/sensu-tlsd/internal/proxytest"
	"github.com/sensu-tlsd/sensu-tlsd/internal/testca"
)

// tlsEchoTarget is a TLS echo server with a certificate for 127.0.0.1
// that counts the connections it accepted.
func tlsEchoTarget(t testing.TB, ca *testca.CA) (string, *atomic.Int64) {
	t.Helper()
	return proxytest.CountingTLSEcho(t, ca.Pair(t, "backend", "127.0.0.1"))
}

func echoOnce(t *testing.T, addr string) time.Duration {
	t.Helper()
	start := time.Now()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	c.Write([]byte("hello"))
	buf := make([]byte, 5)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("echo through originate: %q, %v", buf, err)
	}
	return time.Since(start)
}

// TestOriginateFailsOverPastABlackholedTarget: a first member that drops
// SYNs costs the first connection one dial timeout, not the whole budget,
// and the next connections skip it while it is held down.
func TestOriginateFailsOverPastABlackholedTarget(t *testing.T) {
	ca := testca.New(t)
	good, _ := tlsEchoTarget(t, ca)
	dead := proxytest.Blackhole(t)
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	_, addr := startServer(t, Options{Name: "o", Metrics: m, DialTimeout: 300 * time.Millisecond, Mode: &Originate{
		TLS: clientTLSConfig(Policy{}, ca.Pool(), nil), Targets: []string{dead, good},
	}})
	if d := echoOnce(t, addr); d < 300*time.Millisecond {
		t.Fatalf("the first connection took %v, less than the dial timeout the blackholed target must have cost", d)
	}
	// A dial to the held-down target would fail and count; the counter,
	// not a clock a loaded machine can stretch, says it was skipped.
	for i := range 5 {
		echoOnce(t, addr)
		if n := testutil.ToFloat64(m.targetFailures.WithLabelValues("o", dead)); n != 1 {
			t.Fatalf("after connection %d the blackholed target has %v failures, want 1: the held-down target was dialled again", i+2, n)
		}
	}
}

// TestOriginateTargetOrder: in-order sends every connection to the first
// healthy target; spread gives each target the same share.
func TestOriginateTargetOrder(t *testing.T) {
	ca := testca.New(t)
	for _, spread := range []bool{false, true} {
		var targets []string
		var counts []*atomic.Int64
		for range 3 {
			a, n := tlsEchoTarget(t, ca)
			targets, counts = append(targets, a), append(counts, n)
		}
		_, addr := startServer(t, Options{Name: "o", Mode: &Originate{
			TLS: clientTLSConfig(Policy{}, ca.Pool(), nil), Targets: targets, Spread: spread,
		}})
		for range 30 {
			echoOnce(t, addr)
		}
		for i, n := range counts {
			want := int64(0)
			switch {
			case spread:
				want = 10
			case i == 0:
				want = 30
			}
			if got := n.Load(); got != want {
				t.Errorf("spread=%v: target %d got %d of 30 connections, want %d", spread, i, got, want)
			}
		}
	}
}

// TestOriginateTriesHeldDownTargetsWhenNothingElseIsLeft: with every
// target held down, a connection still tries them rather than failing on
// memory alone, so a member that came back is used at once.
func TestOriginateTriesHeldDownTargetsWhenNothingElseIsLeft(t *testing.T) {
	ca := testca.New(t)
	probe, _ := net.Listen("tcp", "127.0.0.1:0")
	target := probe.Addr().String()
	probe.Close()
	_, addr := startServer(t, Options{Name: "o", Mode: &Originate{
		TLS: clientTLSConfig(Policy{}, ca.Pool(), nil), Targets: []string{target},
	}})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("a connection with its only target down was relayed")
	}
	c.Close()
	pair := ca.Pair(t, "backend", "127.0.0.1")
	back, err := tls.Listen("tcp", target, &tls.Config{Certificates: []tls.Certificate{pair}})
	if err != nil {
		t.Fatal(err)
	}
	defer back.Close()
	go func() {
		for {
			c, err := back.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	echoOnce(t, addr)
}
