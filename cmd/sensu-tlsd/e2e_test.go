package main

// End-to-end tests: the built daemon with its proxy listeners in front of
// the sensu-backend stand-in (plaintext listeners from a backend.yml, the
// real agent handshake, /health), agents dialling the way sensu-agent does,
// and the operator's commands (status, check, renew, migrate) beside it.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/sensu-tlsd/sensu-tlsd/internal/pki"
	"github.com/sensu-tlsd/sensu-tlsd/internal/standintest"
	"github.com/sensu-tlsd/sensu-tlsd/internal/testpeer"
)

// e2ePlainBackend starts the stand-in with a plaintext backend.yml whose
// agent listener is on a free loopback port, and returns that address.
func e2ePlainBackend(t *testing.T, dir string) string {
	t.Helper()
	api, agent := testpeer.FreeAddr(t), testpeer.FreeAddr(t)
	_, agentPort, _ := net.SplitHostPort(agent)
	yml := filepath.Join(dir, "backend.yml")
	e2eWriteFile(t, yml, fmt.Sprintf(`state-dir: %s/sensu-backend
api-listen-address: %s
agent-host: 127.0.0.1
agent-port: %s
`, dir, api, agentPort))
	standintest.Start(t, yml)
	testpeer.WaitTCP(t, agent)
	return agent
}

// e2eRoundTrip sends msg on an agent session and expects the stand-in's
// echo.
func e2eRoundTrip(t *testing.T, a *proxyAgent, msg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.conn.Write(ctx, websocket.MessageBinary, []byte(msg)); err != nil {
		t.Fatalf("agent %s: send: %v", a.name, err)
	}
	_, got, err := a.conn.Read(ctx)
	if err != nil {
		t.Fatalf("agent %s: receive: %v", a.name, err)
	}
	if string(got) != msg {
		t.Fatalf("agent %s: backend echoed %q, want %q", a.name, got, msg)
	}
}

// e2eTrust is a client TLS config trusting the CA file at path.
func e2eTrust(t *testing.T, path string) *tls.Config {
	t.Helper()
	pemBytes, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		t.Fatalf("%s holds no certificate", path)
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}

// e2eServedSerial is the serial of the certificate a TLS handshake with
// addr presents, verified against conf.
func e2eServedSerial(t *testing.T, addr string, conf *tls.Config) string {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, conf)
	if err != nil {
		t.Fatalf("TLS handshake with %s: %v", addr, err)
	}
	defer c.Close()
	return pki.SerialHex(c.ConnectionState().PeerCertificates[0]) // whole bytes, as openssl prints it
}

func e2eWriteFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// e2eAgentsOf reads `status --json` and returns transport by agent name.
func e2eAgentsOf(t *testing.T, dir string, env []string, cfg string) map[string]string {
	t.Helper()
	r := mustRun(t, dir, env, "status", "--json", "--config", cfg)
	var report struct {
		Agents []struct {
			Name      string `json:"name"`
			Transport string `json:"transport"`
		} `json:"agents"`
		AgentsError string `json:"agents_error"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &report); err != nil {
		t.Fatalf("status --json: %v\n%s", err, r.stdout)
	}
	if report.AgentsError != "" {
		t.Fatalf("status --json: agents: %s", report.AgentsError)
	}
	got := map[string]string{}
	for _, a := range report.Agents {
		got[a.Name] = a.Transport
	}
	return got
}

// TestE2EDualListenerCarriesBothTransportsThroughRotation: a dual listener
// in front of a plaintext backend carries ws and wss agents at once,
// status tells them apart, and `renew --force` puts a new certificate on
// the very next handshakes while the open sessions keep working.
func TestE2EDualListenerCarriesBothTransportsThroughRotation(t *testing.T) {
	dir := t.TempDir()
	backend := e2ePlainBackend(t, dir)
	listen, metrics := testpeer.FreeAddr(t), testpeer.FreeAddr(t)
	cfg := daemonConfig(t, dir, "1h", "33%", fmt.Sprintf(`listeners:
  - name: sensu-agent
    mode: dual
    listen: %s
    targets: [%s]
    certificate: backend-1
    allow-plaintext: true
    agent-headers: true
`, listen, backend))
	env := []string{"SENSU_TLSD_METRICS_ADDRESS=" + metrics}
	d := daemonStartEnv(t, dir, cfg, env...)
	d.waitLog(`msg="proxy listener serving" listener=sensu-agent mode=dual address=`+listen, 20*time.Second)
	d.waitLog(`msg="consumers took the certificate" name=backend-1`, 20*time.Second)
	trust := e2eTrust(t, filepath.Join(dir, "tls", "ca.pem"))

	plain, err := proxyDialAgent(t, "ws://"+listen, "plain-agent", nil)
	if err != nil {
		t.Fatalf("ws agent through the dual listener: %v", err)
	}
	defer plain.close()
	secure, err := proxyDialAgent(t, "wss://"+listen, "tls-agent", trust)
	if err != nil {
		t.Fatalf("wss agent through the dual listener: %v", err)
	}
	defer secure.close()
	e2eRoundTrip(t, plain, "keepalive 1")
	e2eRoundTrip(t, secure, "keepalive 1")

	r := mustRun(t, dir, env, "status", "--config", cfg)
	for _, want := range []string{"plain-agent  plaintext", "tls-agent    tls", "2 agents seen by the proxy: 1 over TLS, 1 still in plaintext"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("status lacks %q:\n%s", want, r.stdout)
		}
	}
	if got := e2eAgentsOf(t, dir, env, cfg); got["plain-agent"] != "plaintext" || got["tls-agent"] != "tls" || len(got) != 2 {
		t.Errorf("status --json agents = %v", got)
	}

	before := e2eServedSerial(t, listen, trust)
	if want := daemonSerial(t, filepath.Join(dir, "tls", "backend-1.pem")); before != want {
		t.Fatalf("the listener serves serial %s, the file holds %s", before, want)
	}
	mustRun(t, dir, env, "renew", "backend-1", "--config", cfg, "--force")
	d.waitMetric(renewals("backend-1", "renewal"), 1, 10*time.Second)
	d.waitLog(`msg="consumers took the certificate" name=backend-1 new_serial=\S+ generation=2`, 10*time.Second)
	// The listener takes the new certificate as part of the change event,
	// so the first handshake after the consumers took it has it.
	after := e2eServedSerial(t, listen, trust)
	if want := daemonSerial(t, filepath.Join(dir, "tls", "backend-1.pem")); after == before || after != want {
		t.Fatalf("after renew --force the listener serves %s (before %s, file %s)", after, before, want)
	}
	e2eRoundTrip(t, secure, "keepalive 2 on the session opened before the rotation")
	e2eRoundTrip(t, plain, "keepalive 2")
}

// TestE2ESIGHUPMovesAListenerAndRejectsABrokenOne: SIGHUP moves a changed
// listener to its new address; a listener that cannot be built gets the
// whole new config rejected, and the running listener keeps serving.
func TestE2ESIGHUPMovesAListenerAndRejectsABrokenOne(t *testing.T) {
	dir := t.TempDir()
	backend := e2ePlainBackend(t, dir)
	first, second := testpeer.FreeAddr(t), testpeer.FreeAddr(t)
	listener := func(addr, extra string) string {
		return fmt.Sprintf(`listeners:
  - name: sensu-agent
    mode: terminate
    listen: %s
    targets: [%s]
    certificate: backend-1
%s`, addr, backend, extra)
	}
	cfg := daemonConfig(t, dir, "1h", "33%", listener(first, ""))
	d := daemonStart(t, dir, cfg)
	d.waitLog(`msg="consumers took the certificate" name=backend-1`, 20*time.Second)
	trust := e2eTrust(t, filepath.Join(dir, "tls", "ca.pem"))
	a, err := proxyDialAgent(t, "wss://"+first, "agent-1", trust)
	if err != nil {
		t.Fatalf("wss agent on %s: %v", first, err)
	}
	e2eRoundTrip(t, a, "hello")
	a.close()

	daemonConfig(t, dir, "1h", "33%", listener(second, ""))
	d.signal(syscall.SIGHUP)
	d.waitLog(`msg="proxy listener serving" listener=sensu-agent mode=terminate address=`+second, 20*time.Second)
	d.waitLog(`msg="proxy listener closed: [^"]*" listener=sensu-agent mode=terminate address=`+first+` drain_timeout=10s`, 5*time.Second)
	d.waitLog(`configuration reloaded`, 5*time.Second)
	if c, err := net.DialTimeout("tcp", first, time.Second); err == nil {
		c.Close()
		t.Errorf("the old address %s still accepts after the listener moved", first)
	}
	a, err = proxyDialAgent(t, "wss://"+second, "agent-1", trust)
	if err != nil {
		t.Fatalf("wss agent on the moved listener %s: %v", second, err)
	}
	e2eRoundTrip(t, a, "hello again")
	a.close()

	// A client CA that does not exist passes the config schema but cannot
	// build a listener: the reload is refused before anything changes.
	missing := filepath.Join(dir, "no-such-client-ca.pem")
	daemonConfig(t, dir, "1h", "33%", listener(first, "    client-ca: "+missing+"\n"))
	d.signal(syscall.SIGHUP)
	line := d.waitLog(`new configuration rejected`, 10*time.Second)
	for _, want := range []string{"sensu-agent", missing} {
		if !strings.Contains(line, want) {
			t.Errorf("the rejection does not name %q: %s", want, line)
		}
	}
	d.noLog(`configuration reloaded|proxy listener serving`, 300*time.Millisecond)
	a, err = proxyDialAgent(t, "wss://"+second, "agent-1", trust)
	if err != nil {
		t.Fatalf("the running listener stopped serving after a rejected reload: %v", err)
	}
	e2eRoundTrip(t, a, "still here")
	a.close()
}

// TestE2EBridgeCutsAgentsOverWithoutLosingOne walks the cutover the way an
// operator does: migrate phase 1 moves the backend's listeners to loopback
// and hands the public ports to the daemon's dual listeners; agents on
// ws:// keep working through them; phase 2 points agent.yml at wss:// and
// the same agent comes back over TLS, which status reports.
func TestE2EBridgeCutsAgentsOverWithoutLosingOne(t *testing.T) {
	dir := t.TempDir()
	api, agentPort := testpeer.FreePort(t), testpeer.FreePort(t)
	backend, agent := filepath.Join(dir, "backend.yml"), filepath.Join(dir, "agent.yml")
	e2eWriteFile(t, backend, fmt.Sprintf(`---
state-dir: "%s/sensu-backend"
api-listen-address: "127.0.0.1:%d"
api-url: "http://localhost:%d"
agent-host: "127.0.0.1"
agent-port: %d
`, dir, api, api, agentPort))
	e2eWriteFile(t, agent, fmt.Sprintf(`---
name: "e2e-agent"
backend-url:
  - "ws://127.0.0.1:%d"
`, agentPort))
	metrics := testpeer.FreeAddr(t)
	cfg := filepath.Join(dir, "tlsd.yml")
	e2eWriteFile(t, cfg, fmt.Sprintf(`state-dir: %[1]s/state
metrics-address: %[4]s
certificates:
  - {name: backend, profile: backend, hosts: [localhost, 127.0.0.1]}
sensu:
  backend-config: %[2]s
  agent-config: %[3]s
  backend-certificate: backend
`, dir, backend, agent, metrics))
	mustRun(t, dir, nil, "--config", cfg, "ca", "init")
	mustRun(t, dir, nil, "--config", cfg, "issue", "--all")
	loopAPI, loopAgent := testpeer.FreePort(t), testpeer.FreePort(t)
	mustRun(t, dir, nil, "--config", cfg, "migrate", "apply", "--phase", "1", "--user", "root", "--print-only",
		"--bridge-api-port", fmt.Sprint(loopAPI), "--bridge-agent-port", fmt.Sprint(loopAgent))

	standintest.Start(t, backend)
	testpeer.WaitTCP(t, fmt.Sprintf("127.0.0.1:%d", loopAgent))
	d := daemonStart(t, dir, cfg)
	public := fmt.Sprintf("127.0.0.1:%d", agentPort)
	d.waitLog(`msg="proxy listener serving" listener=sensu-agent mode=dual address=`+public, 20*time.Second)
	d.waitLog(`msg="sensu-tlsd running"`, 20*time.Second)

	// Phase 1: the agent, still on ws://, reaches the backend through the bridge.
	plain, err := proxyDialAgent(t, "ws://"+public, "e2e-agent", nil)
	if err != nil {
		t.Fatalf("ws agent through the bridge: %v", err)
	}
	e2eRoundTrip(t, plain, "phase 1")
	if got := e2eAgentsOf(t, dir, nil, cfg); got["e2e-agent"] != "plaintext" {
		t.Fatalf("status after phase 1: agents %v, want e2e-agent on plaintext", got)
	}

	// Phase 2: agent.yml says wss:// and trusts the CA; the agent restarts
	// and dials from that file alone.
	mustRun(t, dir, nil, "--config", cfg, "migrate", "apply", "--phase", "2", "--user", "root", "--print-only")
	plain.close()
	if ids := sensuconfAgentDial(t, agent); len(ids) != 1 || ids[0] == "" {
		t.Fatalf("wss agent from agent.yml through the bridge: Backend-IDs %q", ids)
	}
	if got := e2eAgentsOf(t, dir, nil, cfg); got["e2e-agent"] != "tls" || len(got) != 1 {
		t.Fatalf("status after phase 2: agents %v, want e2e-agent on tls only", got)
	}
	r := mustRun(t, dir, nil, "status", "--config", cfg)
	if !strings.Contains(r.stdout, "1 agents seen by the proxy: 1 over TLS, 0 still in plaintext") {
		t.Errorf("status after phase 2:\n%s", r.stdout)
	}
}

// TestE2EFailingRenewalsShowInStatusAndCheck: when the issuer keeps
// failing, the installed certificate stays, status says how often and why
// (exit 1), and the Sensu check warns before the expiry thresholds would.
func TestE2EFailingRenewalsShowInStatusAndCheck(t *testing.T) {
	dir := t.TempDir()
	cfg := daemonConfig(t, dir, "1h", "33%", "")
	mustRun(t, dir, nil, "ca", "init", "--config", cfg)
	mustRun(t, dir, nil, "issue", "--all", "--config", cfg)
	cert := filepath.Join(dir, "tls", "backend-1.pem")
	serial := daemonSerial(t, cert)

	// The same certificate, now renewed by a command that fails, and due at
	// once (renew when 59m59s are left of an hour).
	failing := daemonConfig(t, dir, "1h", "59m59s", `    issuer:
      type: exec
      exec:
        command: [/bin/sh, -c, "echo 'vault: permission denied' >&2; exit 2"]
`)
	daemonStart(t, dir, failing)
	waitStatus(t, dir, failing, "backend-1", 20*time.Second, "two failed attempts", func(s renewalState) bool { return s.Failures >= 2 })

	r := run(t, dir, nil, "status", "--config", failing)
	if r.code != 1 || !strings.Contains(r.stdout, "backend-1: renewal failing (") || !strings.Contains(r.stdout, "vault: permission denied") {
		t.Fatalf("status while renewals fail: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = run(t, dir, nil, "check", "--config", failing, "--warn", "30m", "--crit", "10m")
	if r.code != 1 || !strings.HasPrefix(r.stdout, "# WARNING: backend-1 renewal failing (") {
		t.Fatalf("check while renewals fail: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if got := daemonSerial(t, cert); got != serial {
		t.Fatalf("the installed certificate changed from %s to %s although every renewal failed", serial, got)
	}
}

// TestE2ESIGHUPRebuildsServiceActions: services added by a reload act on
// the next change, as if the daemon had started with them.
func TestE2ESIGHUPRebuildsServiceActions(t *testing.T) {
	dir := t.TempDir()
	cfg := daemonConfig(t, dir, "1h", "33%", "")
	d := daemonStart(t, dir, cfg)
	waitStatus(t, dir, cfg, "backend-1", 20*time.Second, "the first set installed", issued)

	acted := filepath.Join(dir, "acted")
	daemonConfig(t, dir, "1h", "33%", fmt.Sprintf(`    services: [notify]
services:
  - name: notify
    action: command
    command: [/bin/sh, -c, 'echo "$SENSU_TLSD_REASONS $SENSU_TLSD_NEW_SERIALS" >> %s']
service-actions:
  coalesce: 10ms
`, acted))
	d.signal(syscall.SIGHUP)
	d.waitLog(`configuration reloaded`, 10*time.Second)
	mustRun(t, dir, nil, "renew", "backend-1", "--config", cfg, "--force")
	d.waitMetric(renewals("backend-1", "renewal"), 1, 10*time.Second)
	serial := daemonSerial(t, filepath.Join(dir, "tls", "backend-1.pem"))
	testpeer.WaitFor(t, 10*time.Second, "the service added by the reload to act", func() bool {
		b, _ := os.ReadFile(acted)
		return len(b) > 0
	})
	b, _ := os.ReadFile(acted)
	if got := strings.TrimSpace(string(b)); !strings.EqualFold(got, "renewal "+serial) {
		t.Fatalf("the command saw %q, want \"renewal %s\"", got, serial)
	}
}
