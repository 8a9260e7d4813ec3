package main

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/internal/inventory"
	"github.com/sensu-tlsd/sensu-tlsd/internal/testpeer"
	"github.com/sensu-tlsd/sensu-tlsd/proxy"
)

// TestDaemonIssuesOverAnExpiredCertificateAtStart: a set that expired
// while the daemon was not running is replaced at start, and the change
// names the expired serial it replaced rather than "".
func TestDaemonIssuesOverAnExpiredCertificateAtStart(t *testing.T) {
	testpeer.NeedPeer(t, testpeer.HasProgram("openssl"), "openssl reads serials and expiry")
	dir := t.TempDir()
	cfg := daemonConfig(t, dir, "1h", "33%", "")
	tls, caDir := filepath.Join(dir, "tls"), filepath.Join(dir, "ca")
	certFile := filepath.Join(tls, "backend-1.pem")
	mustRun(t, dir, nil, "ca", "init", "--dir", caDir)
	mustRun(t, dir, nil, "issue", "backend-1", "--profile", "backend", "--hosts", "localhost,127.0.0.1",
		"--ca-dir", caDir, "--out", tls, "--lifetime", "1s")
	expired := daemonSerial(t, certFile)
	for deadline := time.Now().Add(10 * time.Second); exec.Command("openssl", "x509", "-checkend", "0", "-noout", "-in", certFile).Run() == nil; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("a certificate issued for 1s has not expired after 10s")
		}
	}

	d := daemonStart(t, dir, cfg)
	d.waitLog(`msg="the certificate set on disk is not valid for its plan; issuing a new one" name=backend-1 serial=`+expired+` `, 20*time.Second)
	waitStatus(t, dir, cfg, "backend-1", 20*time.Second, "a new set in place of the expired one", func(s renewalState) bool { return issued(s) && s.Serial != expired })
	if got := daemonSerial(t, certFile); got == expired {
		t.Fatal("the expired certificate is still installed")
	}
	daemonVerify(t, filepath.Join(tls, "ca.pem"), certFile)
}

// TestStatusReadsTheAgentsTheProxyServes: inventory decodes /agents
// itself (rotate imports no consumer), so the two shapes must agree.
func TestStatusReadsTheAgentsTheProxyServes(t *testing.T) {
	seen := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	served := []proxy.AgentSeen{
		{Listener: "sensu-agent", Namespace: "default", Name: "web-1", Transport: proxy.TransportTLS, LastSeen: seen},
		{Listener: "sensu-agent", Namespace: "ops", Name: "db-1", Transport: proxy.TransportPlaintext, LastSeen: seen},
	}
	body, err := proxy.AgentsJSON(served)
	if err != nil {
		t.Fatal(err)
	}
	got, err := inventory.DecodeAgents(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	want := []inventory.Agent{
		{Listener: "sensu-agent", Namespace: "default", Name: "web-1", Transport: "tls", LastSeen: seen},
		{Listener: "sensu-agent", Namespace: "ops", Name: "db-1", Transport: "plaintext", LastSeen: seen},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("status decodes %+v from %s", got, body)
	}
	var table strings.Builder
	if err := inventory.WriteAgents(&table, got, seen.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(table.String(), "2 agents seen by the proxy: 1 over TLS, 1 still in plaintext") {
		t.Fatalf("agents table:\n%s", table.String())
	}
}
