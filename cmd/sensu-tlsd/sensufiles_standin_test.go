package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/sensu-tlsd/sensu-tlsd/config/sensu"
	"github.com/sensu-tlsd/sensu-tlsd/internal/standintest"
	"github.com/sensu-tlsd/sensu-tlsd/internal/testpeer"
)

// sensuconfAgentDial connects like sensu-agent configured by agent.yml:
// every backend-url, the trusted-ca-file, Sensu's headers and Basic auth.
func sensuconfAgentDial(t *testing.T, agentYML string) []string {
	t.Helper()
	src, err := os.ReadFile(agentYML)
	if err != nil {
		t.Fatal(err)
	}
	d, err := sensu.Parse(agentYML, src)
	if err != nil {
		t.Fatal(err)
	}
	urls, _ := d.Get("backend-url")
	ca, _ := d.Get("trusted-ca-file")
	pemBytes, err := os.ReadFile(ca.Scalar)
	if err != nil {
		t.Fatalf("agent.yml trusted-ca-file: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		t.Fatalf("%s holds no certificate", ca.Scalar)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	// Each header from its agent.yml key, with sensu-agent's default when
	// the key is absent.
	setting := func(key, def string) string {
		if v, ok := d.Get(key); ok && v.Scalar != "" {
			return v.Scalar
		}
		return def
	}
	hostname, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	subs, _ := d.Get("subscriptions")
	user := setting("user", "agent")
	header := http.Header{}
	header.Set("Sensu-AgentName", setting("name", hostname))
	header.Set("Sensu-Namespace", setting("namespace", "default"))
	header.Set("Sensu-User", user)
	header.Set("Sensu-Subscriptions", strings.Join(sensu.SensuItems(subs), ","))
	header.Set("Accept", "application/octet-stream")
	header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(user+":"+setting("password", "P@ssw0rd!"))))
	var ids []string
	for _, u := range urls.Items() {
		if !strings.HasPrefix(u, "wss://") {
			t.Fatalf("agent.yml backend-url %q is not wss://", u)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		conn, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPClient: client, HTTPHeader: header})
		cancel()
		if err != nil {
			t.Fatalf("agent dial %s: %v", u, err)
		}
		ids = append(ids, resp.Header.Get("Backend-ID"))
		conn.Close(websocket.StatusNormalClosure, "")
	}
	return ids
}

func TestSensuconfEndToEndStandinServesGeneratedTLS(t *testing.T) {
	dir := t.TempDir()
	api, agentPort := testpeer.FreePort(t), testpeer.FreePort(t)
	backend, agent := filepath.Join(dir, "backend.yml"), filepath.Join(dir, "agent.yml")
	writeFile := func(p, s string) {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(backend, fmt.Sprintf(`---
# Sensu backend configuration
state-dir: "%s/sensu-backend"
api-listen-address: "127.0.0.1:%d"
api-url: "http://localhost:%d"
agent-host: "127.0.0.1"
agent-port: %d
log-level: "warn"
`, dir, api, api, agentPort))
	writeFile(agent, fmt.Sprintf(`---
# Sensu agent configuration
name: "e2e-agent"
namespace: "default"
user: "agent"
backend-url:
  - "ws://127.0.0.1:%d"
  - "ws://localhost:%d"
subscriptions:
  - linux
  - e2e
`, agentPort, agentPort))
	cfg := filepath.Join(dir, "tlsd.yml")
	writeFile(cfg, fmt.Sprintf(`state-dir: %[1]s/state
certificates:
  - {name: backend, profile: backend, hosts: [localhost, 127.0.0.1]}
sensu:
  backend-config: %[2]s
  agent-config: %[3]s
  backend-certificate: backend
`, dir, backend, agent))
	mustRun(t, dir, nil, "--config", cfg, "ca", "init")
	mustRun(t, dir, nil, "--config", cfg, "issue", "--all")
	migrate := func(args ...string) {
		mustRun(t, dir, nil, append([]string{"--config", cfg, "migrate"}, append(args, "--user", "root", "--print-only")...)...)
	}

	// Phase 1: the stand-in started from the bridged backend.yml serves
	// plaintext on the loopback ports the proxy forwards to.
	loopAPIPort := testpeer.FreePort(t)
	migrate("apply", "--phase", "1", "--bridge-api-port", fmt.Sprint(loopAPIPort), "--bridge-agent-port", fmt.Sprint(testpeer.FreePort(t)))
	bridged := standintest.Start(t, backend)
	loopAPI := fmt.Sprintf("127.0.0.1:%d", loopAPIPort)
	testpeer.WaitTCP(t, loopAPI)
	resp, err := http.Get("http://" + loopAPI + "/health")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("bridged backend /health over plaintext loopback: %v %v", resp, err)
	}
	resp.Body.Close()
	bridged.Process.Signal(syscall.SIGTERM)
	bridged.Wait()

	// Phases 2 and 3: agents on wss, the backend serving TLS itself.
	migrate("apply", "--phase", "2")
	migrate("apply", "--phase", "3", "--force") // no daemon counts agents here
	standintest.Start(t, backend)
	testpeer.WaitTCP(t, fmt.Sprintf("127.0.0.1:%d", api))
	testpeer.WaitTCP(t, fmt.Sprintf("127.0.0.1:%d", agentPort))

	// The API answers https at the generated api-url, verified with the CA.
	src, _ := os.ReadFile(backend)
	d, err := sensu.Parse(backend, src)
	if err != nil {
		t.Fatal(err)
	}
	apiURL, _ := d.Get("api-url")
	caFile, _ := d.Get("trusted-ca-file")
	if !strings.HasPrefix(apiURL.Scalar, "https://") {
		t.Fatalf("api-url %q is not https", apiURL.Scalar)
	}
	caPEM, err := os.ReadFile(caFile.Scalar)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err = hc.Get(apiURL.Scalar + "/health")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s/health over TLS: %v %v", apiURL.Scalar, resp, err)
	}
	if resp.TLS == nil {
		t.Fatal("the API answered without TLS")
	}
	resp.Body.Close()

	// The agent, configured only from agent.yml, reaches every member over wss.
	ids := sensuconfAgentDial(t, agent)
	if len(ids) != 2 || ids[0] == "" || ids[0] != ids[1] {
		t.Errorf("Backend-ID from the two backend-url entries: %q", ids)
	}

	// Plaintext is gone from the agent port.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if c, _, err := websocket.Dial(ctx, fmt.Sprintf("ws://127.0.0.1:%d", agentPort), nil); err == nil {
		c.Close(websocket.StatusNormalClosure, "")
		t.Error("a ws:// agent still connects after phase 3")
	}
}
