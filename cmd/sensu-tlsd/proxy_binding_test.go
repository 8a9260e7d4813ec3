package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/sensu-tlsd/sensu-tlsd/internal/standintest"
	"github.com/sensu-tlsd/sensu-tlsd/internal/testpeer"
)

// TestProxyBindsAgentsToTheirCertificates drives the daemon's agent
// listener with agent-identity cn and a deny-file in front of the
// stand-in backend, which speaks Sensu's agent protocol (Basic auth,
// Sensu-* headers): the agent whose certificate names it is admitted; the
// same certificate claiming another name and a client without a
// certificate get the proxy's 403 and never reach the backend; a serial
// added to the deny list is cut off on SIGHUP while the other session
// stays.
func TestProxyBindsAgentsToTheirCertificates(t *testing.T) {
	clients := proxyNewPKI(t)
	dir := t.TempDir()
	backend := bindingStandin(t, dir)
	listen := testpeer.FreeAddr(t)
	deny := filepath.Join(dir, "deny")
	if err := os.WriteFile(deny, []byte("# revoked agents\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := daemonConfig(t, dir, "1h", "33%", fmt.Sprintf(`listeners:
  - name: sensu-agent
    mode: terminate
    listen: %s
    targets: [%s]
    certificate: backend-1
    client-ca: %s
    agent-identity: cn
    deny-file: %s
`, listen, backend.agentAddr, clients.path("ca.pem"), deny))
	d := daemonStart(t, dir, cfg)
	d.waitLog(`msg="consumers took the certificate" name=backend-1`, 20*time.Second)
	conf := func(cn string) *tls.Config {
		c := e2eTrust(t, filepath.Join(dir, "tls", "ca.pem"))
		c.ServerName = "localhost"
		if cn != "" {
			cert, key := clients.issue(t, cn, cn, "ec")
			pair, err := tls.LoadX509KeyPair(cert, key)
			if err != nil {
				t.Fatal(err)
			}
			c.Certificates = []tls.Certificate{pair}
		}
		return c
	}
	url := "wss://" + listen
	agent1, agent3 := conf("agent-1"), conf("agent-3")

	a1 := bindingAdmitted(t, url, "agent-1", agent1)
	a3 := bindingAdmitted(t, url, "agent-3", agent3)
	bindingRefused(t, url, "agent-2", agent1, `certificate CN \"agent-1\" may not connect as agent \"agent-2\"`)
	bindingRefused(t, url, "agent-1", conf(""), "no client certificate")
	d.waitLog(`msg="agent refused" listener=sensu-agent .*certificate="CN=agent-1 URI:spiffe://sensu/agent-1" .*claimed_agent=default/agent-2`, 5*time.Second)
	if got := backend.connected(); strings.Join(got, ",") != "agent-1,agent-3" {
		t.Fatalf("the backend saw agents %v; want agent-1 and agent-3 only", got)
	}

	serial := daemonSerial(t, clients.path("agent-3.pem"))
	if err := os.WriteFile(deny, []byte("serial "+serial+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d.signal(syscall.SIGHUP)
	d.waitLog(`msg="deny list reloaded" listener=sensu-agent .*entries=1 closed_sessions=1`, 10*time.Second)
	if err := bindingEcho(a3, "after the deny"); err == nil {
		t.Fatal("the denied serial's session survived")
	}
	if err := bindingEcho(a1, "after the deny"); err != nil {
		t.Fatalf("agent-1's session was closed with the denied one: %v", err)
	}
	bindingRefused(t, url, "agent-3", agent3, "serial "+strings.ToLower(strings.TrimLeft(serial, "0"))+` (CN \"agent-3\") is on the deny list`)
	if got := backend.connected(); len(got) != 2 {
		t.Fatalf("the backend saw agents %v after the deny; the denied agent reached it", got)
	}
}

// bindingBackend is the stand-in sensu-backend, plaintext on loopback.
type bindingBackend struct {
	agentAddr string
	mu        sync.Mutex
	agents    []string
}

var standinAgentRE = regexp.MustCompile(`msg="agent connected" agent=(\S+)`)

func bindingStandin(t *testing.T, dir string) *bindingBackend {
	t.Helper()
	yml := filepath.Join(dir, "backend.yml")
	if err := os.WriteFile(yml, []byte("api-listen-address: 127.0.0.1:0\nagent-host: 127.0.0.1\nagent-port: 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(standintest.Binary(t), "-c", yml)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	})
	b := &bindingBackend{}
	serving := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			if m := regexp.MustCompile(` agent=(\S+) tls=false`).FindStringSubmatch(line); m != nil && strings.Contains(line, `msg=serving`) {
				serving <- m[1]
			}
			if m := standinAgentRE.FindStringSubmatch(line); m != nil {
				b.mu.Lock()
				b.agents = append(b.agents, m[1])
				b.mu.Unlock()
			}
		}
	}()
	select {
	case b.agentAddr = <-serving:
	case <-time.After(20 * time.Second):
		t.Fatal("the stand-in backend did not start serving")
	}
	return b
}

// connected lists the agents the backend accepted, in order.
func (b *bindingBackend) connected() []string {
	// The stand-in logs a session just after its upgrade; let the line land.
	time.Sleep(100 * time.Millisecond)
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.agents...)
}

// dialAgentSession opens an agent session as name the way sensu-agent does.
func dialAgentSession(url, name string, conf *tls.Config) (*websocket.Conn, *http.Response, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h := http.Header{}
	h.Set("Sensu-AgentName", name)
	h.Set("Sensu-Namespace", "default")
	h.Set("Sensu-User", "agent")
	h.Set("Sensu-Subscriptions", "linux,entity:"+name)
	h.Set("Accept", "application/octet-stream")
	h.Set("Authorization", "Basic YWdlbnQ6UEBzc3cwcmQh")
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: conf, DisableKeepAlives: true}}
	return websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: h, HTTPClient: client})
}

func bindingAdmitted(t *testing.T, url, name string, conf *tls.Config) *websocket.Conn {
	t.Helper()
	c, resp, err := dialAgentSession(url, name, conf)
	if err != nil {
		t.Fatalf("%s with its own certificate: %v", name, err)
	}
	if resp.Header.Get("Backend-ID") == "" {
		t.Fatalf("%s: no Backend-ID: the upgrade was not the backend's", name)
	}
	t.Cleanup(func() { c.CloseNow() })
	if err := bindingEcho(c, "hello from "+name); err != nil {
		t.Fatal(err)
	}
	return c
}

// bindingRefused dials as name and wants the proxy's 403 saying want.
func bindingRefused(t *testing.T, url, name string, conf *tls.Config, want string) {
	t.Helper()
	c, resp, err := dialAgentSession(url, name, conf)
	if err == nil {
		c.CloseNow()
		t.Fatalf("%s was admitted", name)
	}
	if resp == nil {
		t.Fatalf("%s: no HTTP answer: %v", name, err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusForbidden || !strings.HasPrefix(string(b), "sensu-tlsd: ") || !strings.Contains(string(b), strings.ReplaceAll(want, `\"`, `"`)) {
		t.Fatalf("%s: %s %q, want the proxy's 403 saying %q", name, resp.Status, b, want)
	}
}

func bindingEcho(c *websocket.Conn, msg string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageBinary, []byte(msg)); err != nil {
		return err
	}
	_, got, err := c.Read(ctx)
	if err != nil {
		return err
	}
	if string(got) != msg {
		return fmt.Errorf("backend echoed %q, want %q", got, msg)
	}
	return nil
}
