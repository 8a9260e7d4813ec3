package main

import (
	"crypto/tls"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/internal/testpeer"
)

// TestProxySIGHUPNarrowingTheAllowListClosesRefusedSessions: an mTLS
// agent session survives a reload that still allows its certificate's
// CN, and is closed by one that allows only another CN, on the same
// socket; the refused agent cannot come back, and the log says why.
func TestProxySIGHUPNarrowingTheAllowListClosesRefusedSessions(t *testing.T) {
	clients := proxyNewPKI(t) // the CA of the agents' client certificates
	dir := t.TempDir()
	backend := proxyWSBackend(t, nil)
	listen := testpeer.FreeAddr(t)
	listener := func(allowCN ...string) string {
		return fmt.Sprintf(`listeners:
  - name: sensu-agent
    mode: terminate
    listen: %s
    targets: [%s]
    certificate: backend-1
    client-ca: %s
    allow-cn: [%s]
    agent-headers: true
`, listen, backend, clients.path("ca.pem"), strings.Join(allowCN, ", "))
	}
	cfg := daemonConfig(t, dir, "1h", "33%", listener("agent-a"))
	d := daemonStart(t, dir, cfg)
	d.waitLog(`msg="consumers took the certificate" name=backend-1`, 20*time.Second)
	agentConf := func(cn string) *tls.Config {
		conf := e2eTrust(t, filepath.Join(dir, "tls", "ca.pem"))
		conf.ServerName = "localhost"
		cert, key := clients.issue(t, cn, cn, "ec")
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			t.Fatal(err)
		}
		conf.Certificates = []tls.Certificate{pair}
		return conf
	}
	a, err := proxyDialAgent(t, "wss://"+listen, "agent-a", agentConf("agent-a"))
	if err != nil {
		t.Fatalf("agent-a while allowed: %v", err)
	}
	defer a.close()
	if err := a.echo("before"); err != nil {
		t.Fatal(err)
	}
	reload := func(wantClosed int, allowCN ...string) {
		t.Helper()
		daemonConfig(t, dir, "1h", "33%", listener(allowCN...))
		d.signal(syscall.SIGHUP)
		line := d.waitLog(`msg="proxy listener updated in place" listener=sensu-agent`, 10*time.Second)
		if !strings.Contains(line, "address="+listen) || !strings.Contains(line, fmt.Sprintf("closed_sessions=%d", wantClosed)) {
			t.Fatalf("allow-cn %v: update line does not name the same address and %d closed sessions: %s", allowCN, wantClosed, line)
		}
		d.waitLog(`configuration reloaded`, 5*time.Second)
	}

	reload(0, "agent-a", "agent-b")
	if err := a.echo("after a reload that keeps agent-a"); err != nil {
		t.Fatalf("the session of an agent still allowed was closed: %v", err)
	}
	reload(1, "agent-b")
	if err := a.echo("after a reload that allows only agent-b"); err == nil {
		t.Fatal("the session of an agent no longer allowed survived the reload")
	}
	if _, err := proxyDialAgent(t, "wss://"+listen, "agent-a", agentConf("agent-a")); err == nil {
		t.Fatal("agent-a reconnected after the reload refused it")
	}
	// The refusal is in the log with its reason and the client it names.
	d.waitLog(`msg="proxy refused a client certificate \(mTLS\)" listener=sensu-agent remote=\S+ reason=client-not-allowed error=".*CN \\"agent-a\\"`, 5*time.Second)
	b, err := proxyDialAgent(t, "wss://"+listen, "agent-b", agentConf("agent-b"))
	if err != nil {
		t.Fatalf("agent-b after the reload that allows it: %v", err)
	}
	b.close()
}
