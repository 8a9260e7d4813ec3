package main

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/internal/testpeer"
)

func TestProxyTerminateWebsocketCarriesSensuHeaders(t *testing.T) {
	pki := proxyNewPKI(t)
	cert, key := pki.issue(t, "backend", "localhost", "ec")
	backend := proxyWSBackend(t, nil)
	p := proxyStart(t, "--mode", "terminate", "--target", backend, "--cert", cert, "--key", key, "--agent-headers")

	agent, err := proxyDialAgent(t, "wss://"+p.addr+"/", "web-1", pki.clientConfig(t))
	if err != nil {
		t.Fatalf("wss agent through terminate: %v", err)
	}
	defer agent.close()
	for _, msg := range []string{"keepalive", strings.Repeat("event", 4000)} {
		if err := agent.echo(msg); err != nil {
			t.Fatal(err)
		}
	}
	var agents []struct{ Name, Namespace, Transport string }
	if err := json.Unmarshal([]byte(proxyGet(t, "http://"+p.metricsAddr+"/agents")), &agents); err != nil {
		t.Fatal(err)
	}
	if len(agents) != 1 || agents[0].Name != "web-1" || agents[0].Transport != "tls" {
		t.Fatalf("agents seen = %+v, want web-1 over tls", agents)
	}
	if v := p.metric(t, `sensu_tlsd_proxy_connections_total{listener="proxy",transport="tls"}`); v != 1 {
		t.Fatalf("tls connections_total = %v, want 1", v)
	}
	if v := p.metric(t, `sensu_tlsd_proxy_bytes_total{direction="target_to_client",listener="proxy"}`); v < 20000 {
		t.Fatalf("bytes target_to_client = %v, want the echoed 20 kB counted", v)
	}
}

func TestProxyOriginateVerifiesBackendAndFailsOver(t *testing.T) {
	pki := proxyNewPKI(t)
	cert, key := pki.issue(t, "backend", "localhost", "ec")
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	backend := proxyWSBackend(t, &pair)
	dead := testpeer.FreeAddr(t)
	p := proxyStart(t, "--mode", "originate", "--target", dead+","+backend, "--ca", pki.path("ca.pem"))

	agent, err := proxyDialAgent(t, "ws://"+p.addr+"/", "legacy-1", nil)
	if err != nil {
		t.Fatalf("plaintext agent through originate: %v", err)
	}
	defer agent.close()
	if err := agent.echo("check result"); err != nil {
		t.Fatal(err)
	}
	if v := p.metric(t, `sensu_tlsd_proxy_target_failures_total{listener="proxy",target="`+dead+`"}`); v != 1 {
		t.Fatalf("target_failures_total for the dead first target = %v, want 1", v)
	}
}

func TestProxyOriginateRefusesUnverifiedBackend(t *testing.T) {
	pki := proxyNewPKI(t)
	other := proxyNewPKI(t) // a CA the proxy does not trust
	cert, key := other.issue(t, "backend", "localhost", "ec")
	pair, _ := tls.LoadX509KeyPair(cert, key)
	backend := proxyWSBackend(t, &pair)
	p := proxyStart(t, "--mode", "originate", "--target", backend, "--ca", pki.path("ca.pem"))
	if _, err := proxyDialAgent(t, "ws://"+p.addr+"/", "legacy-1", nil); err == nil {
		t.Fatal("originate connected to a backend whose certificate its CA does not sign")
	}
}

func TestProxyDualCountsBothTransports(t *testing.T) {
	pki := proxyNewPKI(t)
	cert, key := pki.issue(t, "backend", "localhost", "rsa")
	backend := proxyWSBackend(t, nil)
	p := proxyStart(t, "--mode", "dual", "--target", backend, "--cert", cert, "--key", key, "--allow-plaintext", "--agent-headers")

	secure, err := proxyDialAgent(t, "wss://"+p.addr+"/", "new-agent", pki.clientConfig(t))
	if err != nil {
		t.Fatalf("wss on the dual port: %v", err)
	}
	defer secure.close()
	legacy, err := proxyDialAgent(t, "ws://"+p.addr+"/", "old-agent", nil)
	if err != nil {
		t.Fatalf("ws on the dual port: %v", err)
	}
	defer legacy.close()
	for _, a := range []*proxyAgent{secure, legacy} {
		if err := a.echo("hello"); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]string{}
	var agents []struct{ Name, Transport string }
	if err := json.Unmarshal([]byte(proxyGet(t, "http://"+p.metricsAddr+"/agents")), &agents); err != nil {
		t.Fatalf("/agents: %v", err)
	}
	for _, a := range agents {
		seen[a.Name] = a.Transport
	}
	if seen["new-agent"] != "tls" || seen["old-agent"] != "plaintext" {
		t.Fatalf("agents seen = %v, want new-agent over tls and old-agent over plaintext", seen)
	}
	for _, tr := range []string{"tls", "plaintext"} {
		if v := p.metric(t, `sensu_tlsd_proxy_agents_seen{listener="proxy",transport="`+tr+`"}`); v != 1 {
			t.Errorf("agents_seen %s = %v, want 1", tr, v)
		}
	}
}

func TestProxyDualRefusesPlaintextUnlessAllowed(t *testing.T) {
	pki := proxyNewPKI(t)
	cert, key := pki.issue(t, "backend", "localhost", "ec")
	p := proxyStart(t, "--mode", "dual", "--target", proxyWSBackend(t, nil), "--cert", cert, "--key", key)
	if _, err := proxyDialAgent(t, "ws://"+p.addr+"/", "old-agent", nil); err == nil {
		t.Fatal("plaintext agent got through a dual port without --allow-plaintext")
	}
	p.waitMetric(t, `sensu_tlsd_proxy_handshake_failures_total{listener="proxy",reason="plaintext-refused"}`, 1)
	a, err := proxyDialAgent(t, "wss://"+p.addr+"/", "new-agent", pki.clientConfig(t))
	if err != nil {
		t.Fatalf("wss on the TLS-only dual port: %v", err)
	}
	a.close()
}

func TestProxyMutualTLSAllowAndDeny(t *testing.T) {
	pki := proxyNewPKI(t)
	cert, key := pki.issue(t, "backend", "localhost", "ec")
	okCert, okKey := pki.issue(t, "agent-1", "agent-1", "ec")
	badCert, badKey := pki.issue(t, "intruder", "intruder", "ec")
	p := proxyStart(t, "--mode", "terminate", "--target", proxyWSBackend(t, nil), "--cert", cert, "--key", key,
		"--client-ca", pki.path("ca.pem"), "--allow-cn", "agent-1", "--allow-uri", "spiffe://sensu/agent-9")

	withCert := func(c, k string) *tls.Config {
		conf := pki.clientConfig(t)
		if c != "" {
			pair, err := tls.LoadX509KeyPair(c, k)
			if err != nil {
				t.Fatal(err)
			}
			conf.Certificates = []tls.Certificate{pair}
		}
		return conf
	}
	a, err := proxyDialAgent(t, "wss://"+p.addr+"/", "agent-1", withCert(okCert, okKey))
	if err != nil {
		t.Fatalf("allowed client certificate refused: %v", err)
	}
	if err := a.echo("ok"); err != nil {
		t.Fatal(err)
	}
	a.close()
	if _, err := proxyDialAgent(t, "wss://"+p.addr+"/", "intruder", withCert(badCert, badKey)); err == nil {
		t.Fatal("client certificate on no allow-list was admitted")
	}
	if _, err := proxyDialAgent(t, "wss://"+p.addr+"/", "anonymous", withCert("", "")); err == nil {
		t.Fatal("client without a certificate was admitted")
	}
	p.waitMetric(t, `sensu_tlsd_proxy_handshake_failures_total{listener="proxy",reason="client-not-allowed"}`, 1)
	p.waitMetric(t, `sensu_tlsd_proxy_handshake_failures_total{listener="proxy",reason="no-client-certificate"}`, 1)
}

// TestProxyRotationDuringTraffic replaces the certificate files (by
// rename, EC to RSA) while clients handshake in a loop: no handshake may
// fail, new handshakes must see the new certificate within a second, and
// an open session keeps working.
func TestProxyRotationDuringTraffic(t *testing.T) {
	pki := proxyNewPKI(t)
	cert, key := pki.issue(t, "backend", "localhost", "ec")
	p := proxyStart(t, "--mode", "terminate", "--target", proxyWSBackend(t, nil), "--cert", cert, "--key", key)
	session, err := proxyDialAgent(t, "wss://"+p.addr+"/", "steady", pki.clientConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	defer session.close()

	serial := func() (string, error) {
		c, err := tls.Dial("tcp", p.addr, pki.clientConfig(t))
		if err != nil {
			return "", err
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber.Text(16), nil
	}
	oldSerial, err := serial()
	if err != nil {
		t.Fatal(err)
	}
	var handshakes, failures atomic.Int64
	var lastErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := serial(); err != nil {
					failures.Add(1)
					lastErr.Store(err)
				}
				handshakes.Add(1)
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	newCert, newKey := pki.issue(t, "backend-next", "localhost", "rsa")
	rotated := time.Now()
	if err := os.Rename(newKey, key); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(newCert, cert); err != nil {
		t.Fatal(err)
	}
	testpeer.WaitFor(t, time.Second, "new handshakes to get the rotated certificate", func() bool {
		s, err := serial()
		return err == nil && s != oldSerial
	})
	t.Logf("rotation reached new handshakes after %v", time.Since(rotated).Round(time.Millisecond))
	time.Sleep(200 * time.Millisecond)
	close(stop)
	wg.Wait()
	if failures.Load() != 0 {
		t.Fatalf("%d of %d handshakes failed during rotation; last: %v", failures.Load(), handshakes.Load(), lastErr.Load())
	}
	if err := session.echo("still here"); err != nil {
		t.Fatalf("session opened before the rotation broke: %v", err)
	}
}

func TestProxyDrainsOnSIGTERM(t *testing.T) {
	pki := proxyNewPKI(t)
	cert, key := pki.issue(t, "backend", "localhost", "ec")
	p := proxyStart(t, "--mode", "terminate", "--target", proxyWSBackend(t, nil), "--cert", cert, "--key", key, "--drain-timeout", "20s")
	a, err := proxyDialAgent(t, "wss://"+p.addr+"/", "draining", pki.clientConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	testpeer.WaitFor(t, 5*time.Second, "the listener to close", func() bool {
		c, err := net.Dial("tcp", p.addr)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	if err := a.echo("in flight during drain"); err != nil {
		t.Fatalf("open session broke during the drain: %v", err)
	}
	select {
	case <-p.exited:
		t.Fatal("proxy exited while a session was still open inside the drain deadline")
	default:
	}
	a.close()
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
		t.Fatal("proxy did not exit once the last session closed")
	}
	if p.exitErr != nil {
		t.Fatalf("drain exit: %v\n%s", p.exitErr, p.stderrText())
	}
}

func TestProxyDrainDeadlineCutsSessions(t *testing.T) {
	pki := proxyNewPKI(t)
	cert, key := pki.issue(t, "backend", "localhost", "ec")
	p := proxyStart(t, "--mode", "terminate", "--target", proxyWSBackend(t, nil), "--cert", cert, "--key", key, "--drain-timeout", "500ms")
	a, err := proxyDialAgent(t, "wss://"+p.addr+"/", "stuck", pki.clientConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	defer a.close()
	start := time.Now()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
		t.Fatal("proxy ignored its drain deadline")
	}
	if d := time.Since(start); d < 400*time.Millisecond {
		t.Fatalf("proxy exited after %v, before the 500ms drain deadline", d)
	}
	if p.exitErr != nil {
		t.Fatalf("exit after drain deadline: %v", p.exitErr)
	}
}

// TestProxySlowlorisAndIdleAreCutOff: a client dribbling a ClientHello is
// cut at the handshake timeout; a relayed session that goes quiet is cut
// at the idle timeout.
func TestProxySlowlorisAndIdleAreCutOff(t *testing.T) {
	pki := proxyNewPKI(t)
	cert, key := pki.issue(t, "backend", "localhost", "ec")
	p := proxyStart(t, "--mode", "terminate", "--target", proxyWSBackend(t, nil), "--cert", cert, "--key", key,
		"--handshake-timeout", "400ms", "--idle-timeout", "500ms")

	slow, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	start := time.Now()
	hello := []byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03}
	cut := false
	for i := 0; i < 50 && !cut; i++ {
		_, err := slow.Write(hello[i%len(hello) : i%len(hello)+1])
		cut = err != nil
		time.Sleep(50 * time.Millisecond)
	}
	slow.SetReadDeadline(time.Now().Add(3 * time.Second))
	_, err = slow.Read(make([]byte, 64))
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("slowloris client still connected 3s after a 400ms handshake timeout")
	}
	if d := time.Since(start); d > 2500*time.Millisecond {
		t.Fatalf("slowloris client cut only after %v", d)
	}
	if v := p.metric(t, `sensu_tlsd_proxy_handshake_failures_total{listener="proxy",reason="timeout"}`); v != 1 {
		t.Fatalf("handshake timeout failures = %v, want 1", v)
	}

	c, err := tls.Dial("tcp", p.addr, pki.clientConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = c.Read(make([]byte, 1))
	if err == nil || errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("idle session not closed by the 500ms idle timeout: %v", err)
	}
}

func TestProxyMaxConnsRefusesAndCounts(t *testing.T) {
	pki := proxyNewPKI(t)
	cert, key := pki.issue(t, "backend", "localhost", "ec")
	p := proxyStart(t, "--mode", "terminate", "--target", proxyWSBackend(t, nil), "--cert", cert, "--key", key, "--max-conns", "2")
	for i := range 2 {
		a, err := proxyDialAgent(t, "wss://"+p.addr+"/", "agent", pki.clientConfig(t))
		if err != nil {
			t.Fatalf("connection %d within max-conns 2: %v", i+1, err)
		}
		defer a.close()
	}
	if _, err := proxyDialAgent(t, "wss://"+p.addr+"/", "agent", pki.clientConfig(t)); err == nil {
		t.Fatal("third connection admitted with --max-conns 2")
	}
	if v := p.metric(t, `sensu_tlsd_proxy_connections_refused_total{listener="proxy",reason="max-conns"}`); v != 1 {
		t.Fatalf("refused max-conns = %v, want 1", v)
	}
}

func TestProxyBackendDownClosesCleanly(t *testing.T) {
	pki := proxyNewPKI(t)
	cert, key := pki.issue(t, "backend", "localhost", "ec")
	dead := testpeer.FreeAddr(t)
	p := proxyStart(t, "--mode", "terminate", "--target", dead, "--cert", cert, "--key", key)
	c, err := tls.Dial("tcp", p.addr, pki.clientConfig(t))
	if err != nil {
		t.Fatalf("handshake with the backend down: %v", err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	_, err = c.Read(make([]byte, 1))
	if err != io.EOF {
		t.Fatalf("client read %v with the backend down, want a clean EOF (close_notify)", err)
	}
	if v := p.metric(t, `sensu_tlsd_proxy_target_failures_total{listener="proxy",target="`+dead+`"}`); v != 1 {
		t.Fatalf("target failures = %v, want 1", v)
	}
}

func TestProxyRejectsBadFlags(t *testing.T) {
	pki := proxyNewPKI(t)
	cert, key := pki.issue(t, "backend", "localhost", "ec")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--mode", "bogus", "--listen", "127.0.0.1:0", "--target", "127.0.0.1:1"}, `mode "bogus" is unknown`},
		{[]string{"--mode", "terminate", "--listen", "127.0.0.1:0", "--target", "127.0.0.1:1"}, "needs a certificate and key"},
		{[]string{"--mode", "terminate", "--listen", "127.0.0.1:0", "--target", "127.0.0.1:1", "--cert", cert, "--key", pki.path("ca-key.pem")}, cert},
		{[]string{"--mode", "terminate", "--listen", "127.0.0.1:0", "--target", "127.0.0.1:1", "--cert", cert, "--key", key, "--allow-cn", "x"}, "need client-ca"},
		// Flags that would do nothing in the mode are refused, naming the right one.
		{[]string{"--mode", "terminate", "--listen", "127.0.0.1:0", "--target", "127.0.0.1:1", "--cert", cert, "--key", key, "--ca", pki.path("ca.pem")}, "give --client-ca"},
		{[]string{"--mode", "dual", "--listen", "127.0.0.1:0", "--target", "127.0.0.1:1", "--cert", cert, "--key", key, "--ca", pki.path("ca.pem")}, "give --client-ca"},
		{[]string{"--mode", "terminate", "--listen", "127.0.0.1:0", "--target", "127.0.0.1:1", "--cert", cert, "--key", key, "--allow-plaintext"}, "use mode dual"},
		{[]string{"--mode", "originate", "--listen", "127.0.0.1:0", "--target", "127.0.0.1:1", "--allow-plaintext"}, "--allow-plaintext (config key allow-plaintext) applies to mode dual only"},
		{[]string{"--mode", "terminate", "--listen", "127.0.0.1:0", "--target", "127.0.0.1:1", "--cert", cert, "--key", key, "--server-name", "backend"}, "Remove server-name"},
		{[]string{"--mode", "dual", "--listen", "127.0.0.1:0", "--target", "127.0.0.1:1", "--cert", cert, "--key", key, "--target-order", "spread"}, "Remove target-order"},
		{[]string{"--mode", "originate", "--listen", "127.0.0.1:0", "--target", "127.0.0.1:1", "--target-order", "random"}, "use in-order"},
	} {
		r := run(t, "", nil, append([]string{"proxy"}, tc.args...)...)
		if r.code == 0 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("proxy %v: exit %d, stderr %q; want a failure mentioning %q", tc.args, r.code, r.stderr, tc.want)
		}
	}
}
