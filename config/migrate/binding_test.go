package migrate

import (
	"reflect"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sensu-tlsd/sensu-tlsd/config"
	"github.com/sensu-tlsd/sensu-tlsd/config/sensu"
	"github.com/sensu-tlsd/sensu-tlsd/proxy"
)

// TestOpenSourceEnforceBindsAgentsAtTheProxy: on the open-source build
// with agent mTLS, phase 4 keeps agent.yml free of cert-file (the agent
// must keep sending its password), points the agent at its local
// sensu-tlsd, which presents the certificate to the backends it named,
// and puts the backend's agent port behind a binding listener that
// refuses agents without a certificate naming them, speaking TLS to the
// backend on loopback. A rollback of phase 4 removes both.
func TestOpenSourceEnforceBindsAgentsAtTheProxy(t *testing.T) {
	n, dir := testNode(t, "backend-packaged.yml", "agent-cluster.yml")
	n.AgentMTLS = true // Commercial stays false: the open-source build
	for p := Bridge; p <= Last; p++ {
		if _, err := apply(n, p); err != nil {
			t.Fatalf("phase %d: %v", p, err)
		}
	}
	agent := string(readOrNil(t, n.Files.Agent))
	if strings.Contains(agent, "cert-file") || !strings.Contains(agent, `ws://`+AgentUplink) || strings.Contains(agent, "10.0.0.1") {
		t.Errorf("agent.yml after phase 4:\n%s", agent)
	}
	d, err := sensu.Parse(n.Files.Backend, readOrNil(t, n.Files.Backend))
	if err != nil {
		t.Fatal(err)
	}
	host, _ := d.Get("agent-host")
	port, _ := d.Get("agent-port")
	cert, _ := d.Get("cert-file")
	if host.Scalar != "127.0.0.1" || port.Scalar != "18081" || cert.Scalar != n.Backend.CertFile {
		t.Errorf("backend.yml after phase 4: agent-host %q agent-port %q cert-file %q", host.Scalar, port.Scalar, cert.Scalar)
	}
	for _, key := range []string{"agent-auth-cert-file", "agent-auth-trusted-ca-file"} {
		if _, ok := d.Get(key); ok {
			t.Errorf("the open-source backend got %s, which it does not read", key)
		}
	}
	ls, err := LoadDropIns(n.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	want := []config.Listener{
		{Name: "sensu-agent", Mode: "terminate", Listen: "::1:8081", Targets: []string{"127.0.0.1:18081"}, Certificate: "backend",
			ClientCA: n.Agent.CAFile, AgentIdentity: "cn", TargetTLS: true, AgentHeaders: true},
		{Name: "sensu-agent-uplink", Mode: "originate", Listen: AgentUplink, Targets: []string{"10.0.0.1:8081", "10.0.0.2:8081", "10.0.0.3:8081"},
			Certificate: "agent", TargetCA: n.agentCA()},
	}
	want[0].Listen = ls[0].Listen // the public agent address of the sample, checked below
	if !reflect.DeepEqual(ls, want) {
		t.Fatalf("phase 4 listeners:\n%+v\nwant\n%+v", ls, want)
	}
	if !strings.HasSuffix(ls[0].Listen, ":8081") {
		t.Errorf("the binding listener does not take the public agent port: %s", ls[0].Listen)
	}
	// The daemon builds them as it would from its own config.
	cfg := &config.Config{Listeners: ls, Certificates: []config.Certificate{
		{Name: "backend", CertFile: n.Backend.CertFile, KeyFile: n.Backend.KeyFile, CAFile: n.Backend.CAFile},
		{Name: "agent", CertFile: n.Agent.CertFile, KeyFile: n.Agent.KeyFile, CAFile: n.Agent.CAFile}}}
	ps, err := proxy.NewListeners(prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	pending, err := ps.Prepare(cfg)
	if err != nil {
		t.Fatal(err)
	}
	pending.Abort()
	// Applying phase 4 again changes nothing: the uplink keeps the
	// backends agent.yml named before it.
	if _, err := apply(n, Enforce); err != nil {
		t.Fatal(err)
	}
	if again, _ := LoadDropIns(n.StateDir); !reflect.DeepEqual(again, ls) {
		t.Fatalf("phase 4 applied twice:\n%+v", again)
	}
	if _, err := rollback(n, false); err != nil {
		t.Fatal(err)
	}
	if readOrNil(t, EnforceDropInPath(n.StateDir)) != nil {
		t.Error("the rollback of phase 4 left its listeners")
	}
	if got := string(readOrNil(t, n.Files.Agent)); !strings.Contains(got, "wss://10.0.0.1:8081") {
		t.Errorf("agent.yml after the rollback:\n%s", normalized(dir, []byte(got)))
	}
}
