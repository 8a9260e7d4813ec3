package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/internal/standintest"
	"github.com/sensu-tlsd/sensu-tlsd/internal/systemdtest"
	"github.com/sensu-tlsd/sensu-tlsd/internal/testpeer"
)

// agentNode is a bridge in front of a stand-in backend, and a stand-in
// sensu-agent connected to it over ws://, kept running by a supervisor as
// systemd would: the restart command kills it and the supervisor starts
// it again on the agent.yml as it is then.
type agentNode struct {
	dir, agentYML, caPEM, bridgeMetrics string
	bridge                              *daemonProc
	bridgeConfig                        string
	agentAPI                            int
	agentLog                            *bytes.Buffer
	mu                                  sync.Mutex
}

func (n *agentNode) agentLogText() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.agentLog.String()
}

func (n *agentNode) Write(b []byte) (int, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.agentLog.Write(b)
}

// startAgentNode builds the bridge (sensu-tlsd run with a dual listener
// serving a certificate of its local CA, which the bridge sends after the
// leaf) in front of a plaintext stand-in backend, and a stand-in agent on
// ws:// through it under a supervisor. An
// agent.yml that says wss:// makes the supervisor wait slowTLS before
// starting the agent: an agent slower to come back than the follower waits.
func startAgentNode(t *testing.T, slowTLS time.Duration) *agentNode {
	t.Helper()
	n := startBridge(t)
	n.supervise(t, slowTLS)
	n.waitAgent(t, "plaintext")
	return n
}

// startBridge is the bridge in front of the stand-in backend, and an
// agent.yml that sends agent-1 to it over ws://.
func startBridge(t *testing.T) *agentNode {
	t.Helper()
	testpeer.NeedPeer(t, testpeer.HasProgram("go"), "go builds the stand-in")
	standin := standintest.Binary(t)
	dir := t.TempDir()
	n := &agentNode{dir: dir, agentYML: filepath.Join(dir, "agent.yml"), agentLog: &bytes.Buffer{}}

	pkiDir := filepath.Join(dir, "pki")
	mustRun(t, dir, nil, "--state-dir", pkiDir, "ca", "init")
	mustRun(t, dir, nil, "--state-dir", pkiDir, "issue", "backend-1", "--profile", "backend", "--hosts", "127.0.0.1,localhost")
	ca, _ := os.ReadFile(filepath.Join(pkiDir, "ca.pem"))
	n.caPEM = string(ca)

	api, agentPort, bridgePort := testpeer.FreePort(t), testpeer.FreePort(t), testpeer.FreePort(t)
	backendYML := filepath.Join(dir, "backend.yml")
	os.WriteFile(backendYML, fmt.Appendf(nil, "api-listen-address: 127.0.0.1:%d\nagent-host: 127.0.0.1\nagent-port: %d\n", api, agentPort), 0o644)
	backend := exec.Command(standin, "-c", backendYML)
	backend.Stderr = n
	if err := backend.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { backend.Process.Kill(); backend.Wait() })

	bridgeCfg := filepath.Join(dir, "bridge.yml")
	os.WriteFile(bridgeCfg, fmt.Appendf(nil, `state-dir: %[1]s/bridge-state
metrics-address: 127.0.0.1:0
certificates:
  - name: backend-1
    profile: backend
    issuer: files
    cert-file: %[1]s/pki/backend-1.pem
    key-file: %[1]s/pki/backend-1-key.pem
    ca-file: %[1]s/pki/ca.pem
    trusted-ca: %[1]s/pki/ca.pem
listeners:
  - name: agent-ws
    mode: dual
    listen: 127.0.0.1:%[2]d
    targets: [127.0.0.1:%[3]d]
    certificate: backend-1
    allow-plaintext: true
    agent-headers: true
`, dir, bridgePort, agentPort), 0o644)
	n.bridge, n.bridgeConfig = daemonStart(t, dir, bridgeCfg), bridgeCfg
	n.bridge.waitLog("sensu-tlsd running", 30*time.Second)
	n.bridgeMetrics = n.bridge.metricsAddr()

	n.agentAPI = testpeer.FreePort(t)
	os.WriteFile(n.agentYML, fmt.Appendf(nil, `# agent-1, placed by configuration management
name: agent-1
backend-url:
  - "ws://127.0.0.1:%d"
api-host: 127.0.0.1
api-port: %d
`, bridgePort, n.agentAPI), 0o644)
	return n
}

// supervise runs the stand-in agent on agent.yml, again each time it
// ends; while agent.yml says wss://, each start waits slowTLS first.
func (n *agentNode) supervise(t *testing.T, slowTLS time.Duration) {
	standin := standintest.Binary(t)
	ready := func(ctx context.Context) bool {
		if yml, _ := os.ReadFile(n.agentYML); slowTLS > 0 && bytes.Contains(yml, []byte("wss://")) {
			select {
			case <-ctx.Done():
				return false
			case <-time.After(slowTLS):
			}
		}
		return ctx.Err() == nil
	}
	supervise(t, filepath.Join(n.dir, "agent.pid"), ready, func() *exec.Cmd {
		agent := exec.Command(standin, "agent", "-c", n.agentYML, "--keepalive-interval", "200ms")
		agent.Stderr = n
		return agent
	})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("stand-in log:\n%s", n.agentLogText())
		}
	})
}

// waitAgent waits for the bridge's /agents to show agent-1 over transport.
func (n *agentNode) waitAgent(t *testing.T, transport string) {
	t.Helper()
	testpeer.WaitFor(t, 20*time.Second, "agent-1 over "+transport+" at the bridge", func() bool {
		var agents []struct{ Name, Transport string }
		json.Unmarshal([]byte(proxyGet(t, "http://"+n.bridgeMetrics+"/agents")), &agents)
		return len(agents) == 1 && agents[0].Name == "agent-1" && agents[0].Transport == transport
	})
}

// agentNodeConfig is the agent node's sensu-tlsd config with pin. Its
// restart command returns once the old agent has exited, as systemctl
// restart does: the health gate starts when the command returns.
func (n *agentNode) agentNodeConfig(t *testing.T, name, pin, reconnect string) string {
	t.Helper()
	p := filepath.Join(n.dir, name+".yml")
	os.WriteFile(p, fmt.Appendf(nil, `state-dir: %[1]s/%[2]s-state
metrics-address: ""
sensu:
  agent-config: %[3]s
  agent-env-files: [%[1]s/no-env-file]
agent-cutover:
  enabled: true
  ca-file: %[1]s/agent-tls/ca.pem
  ca-fingerprint-sha256: %[4]s
  interval: 1s
  reconnect-timeout: %[6]s
services:
  - name: sensu-agent
    action: command
    command: [/bin/sh, -c, '%[7]s']
    health: {url: "http://127.0.0.1:%[5]d/healthz"}
`, n.dir, name, n.agentYML, pin, n.agentAPI, reconnect, killAndWait(filepath.Join(n.dir, "agent.pid"), "")), 0o644)
	return p
}

// An agent node follows the bridge by itself: a wrong pin is refused with
// the fingerprint seen and the one expected, agent.yml untouched; the
// right pin, given by a reload, gets the CA from the handshake, agent.yml
// switched to wss://, the agent restarted by its service action and
// reconnected over TLS.
func TestAgentNodeFollowsTheBridge(t *testing.T) {
	n := startAgentNode(t, 0)
	pin := n.pin()
	orig, _ := os.ReadFile(n.agentYML)

	wrong := strings.Repeat("ab", 32)
	d := daemonStart(t, n.dir, n.agentNodeConfig(t, "node", wrong, "20s"))
	line := d.waitLog(`agent cutover: refused`, 30*time.Second)
	for _, want := range []string{"expected " + strings.ToUpper(strings.Join(splitPairs(wrong), ":")), "seen ", pin} {
		if !strings.Contains(line, want) {
			t.Errorf("refusal does not say %q:\n%s", want, line)
		}
	}
	if now, _ := os.ReadFile(n.agentYML); !bytes.Equal(now, orig) {
		t.Errorf("agent.yml changed under a wrong pin:\n%s", now)
	}
	if _, err := os.Stat(filepath.Join(n.dir, "agent-tls", "ca.pem")); err == nil {
		t.Error("a CA was written under a wrong pin")
	}

	// The operator corrects the pin; a reload takes it.
	n.agentNodeConfig(t, "node", pin, "20s")
	d.signal(syscall.SIGHUP)
	d.waitLog(`configuration reloaded`, 30*time.Second)
	d.waitLog(`pinned CA taken from the backends' handshake`, 30*time.Second)
	d.waitLog(`agent cutover: switched.*reconnected over wss://`, 60*time.Second)
	got, _ := os.ReadFile(n.agentYML)
	if !strings.Contains(string(got), `"wss://127.0.0.1:`) || !strings.Contains(string(got), "trusted-ca-file: "+filepath.Join(n.dir, "agent-tls", "ca.pem")) ||
		!strings.Contains(string(got), "# agent-1, placed by configuration management") {
		t.Errorf("agent.yml after the switch:\n%s", got)
	}
	if bak, _ := os.ReadFile(n.agentYML + ".sensu-tlsd.bak"); !bytes.Equal(bak, orig) {
		t.Errorf("backup of agent.yml:\n%s", bak)
	}
	if ca, _ := os.ReadFile(filepath.Join(n.dir, "agent-tls", "ca.pem")); string(ca) != n.caPEM {
		t.Errorf("CA written:\n%s\nwant the bridge's CA:\n%s", ca, n.caPEM)
	}
	n.waitAgent(t, "tls")
	status := mustRun(t, n.dir, nil, "status", "--config", filepath.Join(n.dir, "node.yml"))
	if !strings.Contains(status.stdout, "agent cutover: switched at ") || !strings.Contains(status.stdout, "wss://") {
		t.Errorf("status on the agent node:\n%s", status.stdout)
	}
	if strings.Contains(n.agentLogText(), "keepalive failed") {
		t.Errorf("a keepalive failed during the switch:\n%s", n.agentLogText())
	}
}

// An agent that does not reconnect over wss:// within reconnect-timeout
// gets its agent.yml back, is restarted on it and reconnects in plaintext;
// the follower says when it tries again.
func TestAgentNodeGoesBackWhenTheAgentDoesNotReconnect(t *testing.T) {
	n := startAgentNode(t, 4*time.Second)
	orig, _ := os.ReadFile(n.agentYML)
	d := daemonStart(t, n.dir, n.agentNodeConfig(t, "slow", n.pin(), "3s"))
	line := d.waitLog(`agent cutover: rolled-back`, 60*time.Second)
	for _, want := range []string{"did not reconnect over wss://", "not healthy within 3s", "put back and it reconnected on them", "trying again in 2s"} {
		if !strings.Contains(line, want) {
			t.Errorf("rollback does not say %q:\n%s", want, line)
		}
	}
	if now, _ := os.ReadFile(n.agentYML); !bytes.Equal(now, orig) {
		t.Errorf("agent.yml after the rollback:\n%s\nwant:\n%s", now, orig)
	}
	n.waitAgent(t, "plaintext")
}

// pin is the bridge CA's SHA-256 fingerprint as openssl prints it.
func (n *agentNode) pin() string {
	block, _ := pem.Decode([]byte(n.caPEM))
	sum := sha256.Sum256(block.Bytes)
	var pairs []string
	for _, b := range sum {
		pairs = append(pairs, fmt.Sprintf("%02X", b))
	}
	return strings.Join(pairs, ":")
}

func splitPairs(hex string) []string {
	var out []string
	for i := 0; i+1 < len(hex); i += 2 {
		out = append(out, hex[i:i+2])
	}
	return out
}

// The sensu-agent preset through a real systemd: the follower restarts
// sensu-agent.service over D-Bus (never a signal: the stand-in writes
// --hup-file if SIGHUP reaches it) and checks /healthz on the api-port
// agent.yml sets, not the preset's default.
func TestAgentNodeRestartsSensuAgentServiceInRealSystemd(t *testing.T) {
	sys := systemdtest.Boot(t)
	n := startBridge(t)
	hup := filepath.Join(n.dir, "hup")
	log := filepath.Join(n.dir, "agent-unit.log")
	sys.InstallUnit("sensu-agent.service", fmt.Sprintf(`[Unit]
Description=stand-in sensu-agent
DefaultDependencies=no
[Service]
Type=exec
ExecStart=%s agent -c %s --hup-file %s
StandardOutput=append:%s
StandardError=inherit
`, standintest.Binary(t), n.agentYML, hup, log))
	sys.Systemctl("start", "sensu-agent.service")
	n.waitAgent(t, "plaintext")
	pid := sys.Property("sensu-agent.service", "MainPID")

	cfg := filepath.Join(n.dir, "preset.yml")
	os.WriteFile(cfg, fmt.Appendf(nil, `state-dir: %[1]s/preset-state
metrics-address: ""
sensu:
  agent-config: %[2]s
  agent-env-files: [%[1]s/no-env-file]
service-actions:
  systemd-address: %[3]s
agent-cutover:
  enabled: true
  ca-file: %[1]s/agent-tls/ca.pem
  ca-fingerprint-sha256: %[4]s
  interval: 1s
`, n.dir, n.agentYML, sys.PrivateSocket(), n.pin()), 0o644)
	d := daemonStart(t, n.dir, cfg)
	d.waitLog(`msg=acting service=sensu-agent.*action="restart sensu-agent.service"`, 30*time.Second)
	d.waitLog(`agent cutover: switched.*reconnected over wss://`, 60*time.Second)
	n.waitAgent(t, "tls")
	if now := sys.Property("sensu-agent.service", "MainPID"); now == pid {
		t.Errorf("sensu-agent.service still runs pid %s: not restarted", now)
	}
	if b, err := os.ReadFile(hup); err == nil {
		t.Errorf("sensu-agent got SIGHUP: %s", b)
	}
}
