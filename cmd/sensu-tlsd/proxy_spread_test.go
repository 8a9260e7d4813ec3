package main

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/internal/proxytest"
	"github.com/sensu-tlsd/sensu-tlsd/internal/testpeer"
)

// TestProxyTargetOrderSpread: with --target-order spread (config key
// target-order), an originate listener sends its connections to the two
// members in turn; in-order sends them all to the first.
func TestProxyTargetOrderSpread(t *testing.T) {
	pki := proxyNewPKI(t)
	cert, key := pki.issue(t, "backend", "localhost", "ec")
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	const conns = 10
	through := func(addr string) {
		t.Helper()
		for i := range conns {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			c.SetDeadline(time.Now().Add(10 * time.Second))
			msg := fmt.Sprintf("hello %d", i)
			c.Write([]byte(msg))
			got := make([]byte, len(msg))
			if _, err := io.ReadFull(c, got); err != nil || string(got) != msg {
				t.Fatalf("connection %d through originate: %q, %v", i, got, err)
			}
			c.Close()
		}
	}
	check := func(how string, counts [2]*atomic.Int64, want [2]int64) {
		t.Helper()
		if got := [2]int64{counts[0].Load(), counts[1].Load()}; got != want {
			t.Errorf("%s: the members got %v of %d connections, want %v", how, got, conns, want)
		}
	}

	for _, order := range []string{"spread", "in-order"} {
		a, na := proxytest.CountingTLSEcho(t, pair)
		b, nb := proxytest.CountingTLSEcho(t, pair)
		p := proxyStart(t, "--mode", "originate", "--target", a+","+b, "--target-order", order, "--ca", pki.path("ca.pem"), "--server-name", "localhost")
		through(p.addr)
		want := [2]int64{conns, 0}
		if order == "spread" {
			want = [2]int64{conns / 2, conns / 2}
		}
		check("--target-order "+order, [2]*atomic.Int64{na, nb}, want)
	}

	dir := t.TempDir()
	a, na := proxytest.CountingTLSEcho(t, pair)
	b, nb := proxytest.CountingTLSEcho(t, pair)
	listen := testpeer.FreeAddr(t)
	d := daemonStart(t, dir, daemonConfig(t, dir, "1h", "33%", fmt.Sprintf(`listeners:
  - name: to-backends
    mode: originate
    listen: %s
    targets: [%s]
    target-ca: %s
    server-name: localhost
    target-order: spread
`, listen, strings.Join([]string{a, b}, ", "), pki.path("ca.pem"))))
	d.waitLog(`msg="proxy listener serving" listener=to-backends`, 20*time.Second)
	through(listen)
	check("config key target-order: spread", [2]*atomic.Int64{na, nb}, [2]int64{conns / 2, conns / 2})
}
