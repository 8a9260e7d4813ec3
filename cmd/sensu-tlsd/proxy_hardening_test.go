package main

// Proxy integration tests for fail-over, reloads, the file watch and the
// edges of the relay, through the built binary.

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/internal/proxytest"
	"github.com/sensu-tlsd/sensu-tlsd/internal/testpeer"
)

// TestProxyOriginateFailsOverPastABlackholedMember: the first cluster
// member drops SYNs. The first agent waits one dial timeout and reaches
// the second member; the next agents skip the dead one at once.
func TestProxyOriginateFailsOverPastABlackholedMember(t *testing.T) {
	pki := proxyNewPKI(t)
	cert, key := pki.issue(t, "backend", "localhost", "ec")
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	backend := proxyWSBackend(t, &pair)
	dead := proxytest.Blackhole(t)
	p := proxyStart(t, "--mode", "originate", "--target", dead+","+backend, "--ca", pki.path("ca.pem"), "--dial-timeout", "1s")

	for i := range 3 {
		start := time.Now()
		agent, err := proxyDialAgent(t, "ws://"+p.addr+"/", fmt.Sprintf("legacy-%d", i), nil)
		if err != nil {
			t.Fatalf("agent %d through originate with the first member blackholed: %v", i, err)
		}
		took := time.Since(start)
		if err := agent.echo("check result"); err != nil {
			t.Fatal(err)
		}
		agent.close()
		if i == 0 && took < time.Second {
			t.Fatalf("the first agent connected in %v, before the blackholed member's 1s dial timeout", took)
		}
		// A dial to the held-down member would fail and count; the
		// counter, not a clock a loaded machine can stretch, says it was
		// skipped.
		if v := p.metric(t, `sensu_tlsd_proxy_target_failures_total{listener="proxy",target="`+dead+`"}`); v != 1 {
			t.Fatalf("after agent %d target_failures_total for the blackholed member = %v, want 1: it was dialled again instead of skipped", i, v)
		}
	}
}

// TestProxyLogInCertDirectoryDoesNotLoop: with the proxy's stderr in the
// directory of its certificate and CA, a reload's own log line must not
// cause another reload; a real rotation reloads exactly once.
func TestProxyLogInCertDirectoryDoesNotLoop(t *testing.T) {
	pki := proxyNewPKI(t)
	cert, key := pki.issue(t, "backend", "localhost", "ec")
	logFile := pki.path("proxy.log")
	p := proxyStartLogging(t, logFile, "--mode", "terminate", "--target", proxyWSBackend(t, nil), "--cert", cert, "--key", key,
		"--client-ca", pki.path("ca.pem"))
	reloads := func() int { return strings.Count(p.stderrText(), "reloaded") }

	caPEM, err := os.ReadFile(pki.path("ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pki.path("ca.pem"), caPEM, 0o644); err != nil { // same bytes
		t.Fatal(err)
	}
	if err := os.WriteFile(pki.path("notes.txt"), []byte("unrelated"), 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(600 * time.Millisecond)
	if n := reloads(); n != 0 {
		t.Fatalf("%d reloads after writes that changed no certificate:\n%s", n, p.stderrText())
	}
	newCert, newKey := pki.issue(t, "backend-next", "localhost", "ec")
	if err := os.Rename(newKey, key); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(newCert, cert); err != nil {
		t.Fatal(err)
	}
	testpeer.WaitFor(t, 3*time.Second, "the rotation to be reloaded", func() bool { return reloads() >= 1 })
	time.Sleep(time.Second) // a loop reloads every 150 ms
	if n := reloads(); n != 1 {
		t.Fatalf("one rotation gave %d reloads:\n%s", n, p.stderrText())
	}
}

// TestProxySIGHUPTurningPlaintextOffKeepsTLSSessions is the cutover's
// enforce step on a running daemon: allow-plaintext goes false on the
// dual listener. Its TLS sessions continue on the same socket, its
// plaintext sessions are closed, and new plaintext clients are refused.
func TestProxySIGHUPTurningPlaintextOffKeepsTLSSessions(t *testing.T) {
	dir := t.TempDir()
	backend := proxyWSBackend(t, nil)
	listen := testpeer.FreeAddr(t)
	listener := func(allow bool) string {
		return fmt.Sprintf(`listeners:
  - name: sensu-agent
    mode: dual
    listen: %s
    targets: [%s]
    certificate: backend-1
    allow-plaintext: %v
    agent-headers: true
`, listen, backend, allow)
	}
	cfg := daemonConfig(t, dir, "1h", "33%", listener(true))
	d := daemonStart(t, dir, cfg)
	d.waitLog(`msg="consumers took the certificate" name=backend-1`, 20*time.Second)
	trust := e2eTrust(t, filepath.Join(dir, "tls", "ca.pem"))
	trust.ServerName = "localhost"

	secure, err := proxyDialAgent(t, "wss://"+listen, "tls-agent", trust)
	if err != nil {
		t.Fatalf("wss agent: %v", err)
	}
	defer secure.close()
	plain, err := proxyDialAgent(t, "ws://"+listen, "plain-agent", nil)
	if err != nil {
		t.Fatalf("ws agent while plaintext is allowed: %v", err)
	}
	defer plain.close()
	for _, a := range []*proxyAgent{secure, plain} {
		if err := a.echo("before"); err != nil {
			t.Fatal(err)
		}
	}

	daemonConfig(t, dir, "1h", "33%", listener(false))
	d.signal(syscall.SIGHUP)
	line := d.waitLog(`msg="proxy listener updated in place" listener=sensu-agent`, 10*time.Second)
	if !strings.Contains(line, "address="+listen) || !strings.Contains(line, "closed_sessions=1") {
		t.Errorf("update line does not name the same address and one closed session: %s", line)
	}
	d.waitLog(`configuration reloaded`, 5*time.Second)
	d.noLog(`proxy listener serving`, 200*time.Millisecond)
	if err := secure.echo("after enforce"); err != nil {
		t.Fatalf("the TLS session did not survive turning plaintext off: %v", err)
	}
	if err := plain.echo("after enforce"); err == nil {
		t.Fatal("the plaintext session survived turning plaintext off")
	}
	if _, err := proxyDialAgent(t, "ws://"+listen, "late-plain-agent", nil); err == nil {
		t.Fatal("a new plaintext agent was admitted after allow-plaintext went false")
	}
	again, err := proxyDialAgent(t, "wss://"+listen, "tls-agent-2", trust)
	if err != nil {
		t.Fatalf("a new wss agent after the reload: %v", err)
	}
	again.close()
}

// TestProxyMutualTLSAllowsByDNSAndURISAN: the DNS and URI SAN allow-lists
// admit a client certificate carrying the name and refuse one without it.
func TestProxyMutualTLSAllowsByDNSAndURISAN(t *testing.T) {
	pki := proxyNewPKI(t)
	cert, key := pki.issue(t, "backend", "localhost", "ec")
	clientConf := func(cn string) *tls.Config {
		c, k := pki.issue(t, cn, cn, "ec") // SANs DNS:localhost, URI:spiffe://sensu/CN
		pair, err := tls.LoadX509KeyPair(c, k)
		if err != nil {
			t.Fatal(err)
		}
		conf := pki.clientConfig(t)
		conf.Certificates = []tls.Certificate{pair}
		return conf
	}
	backend := proxyWSBackend(t, nil)
	for _, tc := range []struct {
		allow         []string
		admit, refuse string // client CNs
	}{
		{[]string{"--allow-uri", "spiffe://sensu/agent-7"}, "agent-7", "agent-8"},
		{[]string{"--allow-dns", "localhost"}, "agent-9", ""},
		{[]string{"--allow-dns", "agents.example.com"}, "", "agent-10"},
	} {
		args := append([]string{"--mode", "terminate", "--target", backend, "--cert", cert, "--key", key, "--client-ca", pki.path("ca.pem")}, tc.allow...)
		p := proxyStart(t, args...)
		if tc.admit != "" {
			a, err := proxyDialAgent(t, "wss://"+p.addr+"/", tc.admit, clientConf(tc.admit))
			if err != nil {
				t.Fatalf("%v: client %s refused: %v", tc.allow, tc.admit, err)
			}
			if err := a.echo("ok"); err != nil {
				t.Fatal(err)
			}
			a.close()
		}
		if tc.refuse != "" {
			if _, err := proxyDialAgent(t, "wss://"+p.addr+"/", tc.refuse, clientConf(tc.refuse)); err == nil {
				t.Fatalf("%v: client %s admitted", tc.allow, tc.refuse)
			}
			p.waitMetric(t, `sensu_tlsd_proxy_handshake_failures_total{listener="proxy",reason="client-not-allowed"}`, 1)
		}
	}
}

// TestProxySlowlorisOnTheUpgradeRequestIsCut: with agent headers on, a
// client that completes TLS and then dribbles its upgrade request is cut
// at the handshake timeout, counted as a timeout.
func TestProxySlowlorisOnTheUpgradeRequestIsCut(t *testing.T) {
	pki := proxyNewPKI(t)
	cert, key := pki.issue(t, "backend", "localhost", "ec")
	p := proxyStart(t, "--mode", "terminate", "--target", proxyWSBackend(t, nil), "--cert", cert, "--key", key,
		"--agent-headers", "--handshake-timeout", "400ms")
	c, err := tls.Dial("tcp", p.addr, pki.clientConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	req := "GET / HTTP/1.1\r\nHost: backend:8081\r\nUpgrade: websocket\r\nSensu-AgentName: slow\r\n"
	cut := false
	for i := 0; i < len(req) && !cut; i++ {
		_, err := c.Write([]byte{req[i]})
		cut = err != nil
		time.Sleep(50 * time.Millisecond)
	}
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	_, err = c.Read(make([]byte, 64))
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("a client dribbling its upgrade request was still connected 3s after a 400ms handshake timeout")
	}
	if d := time.Since(start); d > 2500*time.Millisecond {
		t.Fatalf("the slow upgrade request was cut only after %v", d)
	}
	p.waitMetric(t, `sensu_tlsd_proxy_handshake_failures_total{listener="proxy",reason="timeout"}`, 1)
}

// TestProxyTargetHalfCloseReachesClient: a target that answers and shuts
// its write side gives the client a clean end of stream (close_notify),
// while the client can still send and the target still receives.
func TestProxyTargetHalfCloseReachesClient(t *testing.T) {
	pki := proxyNewPKI(t)
	cert, key := pki.issue(t, "backend", "localhost", "ec")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	after := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		r := bufio.NewReader(c)
		r.ReadString('\n')
		c.Write([]byte("answer\n"))
		c.(*net.TCPConn).CloseWrite()
		rest, _ := io.ReadAll(r)
		after <- string(rest)
	}()
	p := proxyStart(t, "--mode", "terminate", "--target", ln.Addr().String(), "--cert", cert, "--key", key)
	c, err := tls.Dial("tcp", p.addr, pki.clientConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write([]byte("question\n"))
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "answer\n" {
		t.Fatalf("client read %q, %v; want the answer and a clean end of stream", got, err)
	}
	if _, err := c.Write([]byte("still talking\n")); err != nil {
		t.Fatalf("client write after the target's half-close: %v", err)
	}
	c.CloseWrite()
	select {
	case rest := <-after:
		if rest != "still talking\n" {
			t.Fatalf("target received %q after its half-close, want the client's last line", rest)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the target never saw the client's end of stream")
	}
}

// TestProxyALPNDefaultsToHTTP11: with no --alpn a client offering h2
// negotiates nothing and speaks HTTP/1.1 to the plaintext target; with
// --alpn http/1.1 an h2-only client is refused at the handshake.
func TestProxyALPNDefaultsToHTTP11(t *testing.T) {
	pki := proxyNewPKI(t)
	cert, key := pki.issue(t, "backend", "localhost", "ec")
	backend := proxyWSBackend(t, nil)
	plain := proxyStart(t, "--mode", "terminate", "--target", backend, "--cert", cert, "--key", key)
	conf := pki.clientConfig(t)
	conf.NextProtos = []string{"h2", "http/1.1"}
	c, err := tls.Dial("tcp", plain.addr, conf)
	if err != nil {
		t.Fatal(err)
	}
	if p := c.ConnectionState().NegotiatedProtocol; p != "" {
		t.Errorf("default listener negotiated %q with a client offering h2", p)
	}
	c.Close()
	h1 := proxyStart(t, "--mode", "terminate", "--target", backend, "--cert", cert, "--key", key, "--alpn", "http/1.1")
	conf.NextProtos = []string{"h2"}
	if c, err := tls.Dial("tcp", h1.addr, conf); err == nil {
		c.Close()
		t.Fatal("an h2-only client got a session to an HTTP/1.1 target")
	}
	h1.waitMetric(t, `sensu_tlsd_proxy_handshake_failures_total{listener="proxy",reason="no-shared-alpn"}`, 1)
	conf.NextProtos = []string{"h2", "http/1.1"}
	a, err := proxyDialAgent(t, "wss://"+h1.addr+"/", "browser-like", conf)
	if err != nil {
		t.Fatalf("websocket with h2 and http/1.1 offered through --alpn http/1.1: %v", err)
	}
	if err := a.echo("hello"); err != nil {
		t.Fatal(err)
	}
	a.close()
}
