package proxy

import (
	"context"
	"crypto/tls"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sensu-tlsd/sensu-tlsd/config"
	"github.com/sensu-tlsd/sensu-tlsd/rotate"
)

// TestGroupStartsBeforeIssuanceAndFollowsTheBus: a listener whose
// certificate does not exist yet fails handshakes, then serves the pair
// the first Change announces.
func TestGroupStartsBeforeIssuanceAndFollowsTheBus(t *testing.T) {
	ca := newTestCA(t)
	dir := t.TempDir()
	cfg := &config.Config{
		Certificates: []config.Certificate{{Name: "backend", CertFile: filepath.Join(dir, "backend.pem"), KeyFile: filepath.Join(dir, "backend-key.pem")}},
		Listeners:    []config.Listener{{Name: "sensu-agent", Mode: "terminate", Listen: "127.0.0.1:0", Targets: []string{echoServer(t)}, Certificate: "backend"}},
	}
	var bus rotate.Bus
	g, err := StartFromConfig(cfg, &bus, prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Shutdown(context.Background())
	addr := g.Addrs()[0].String()
	clientConf := &tls.Config{RootCAs: ca.pool(), ServerName: "localhost"}
	if c, err := tls.Dial("tcp", addr, clientConf); err == nil {
		c.Close()
		t.Fatal("handshake succeeded before the certificate was issued")
	}
	certPEM, keyPEM := ca.issueBoth(t, false)
	writeFile(t, cfg.Certificates[0].CertFile, certPEM)
	writeFile(t, cfg.Certificates[0].KeyFile, keyPEM)
	if err := bus.Publish(context.Background(), rotate.Change{Name: "backend", Reason: rotate.ReasonInitial,
		CertFile: cfg.Certificates[0].CertFile, KeyFile: cfg.Certificates[0].KeyFile}); err != nil {
		t.Fatal(err)
	}
	c, err := tls.Dial("tcp", addr, clientConf)
	if err != nil {
		t.Fatalf("handshake after the initial Change: %v", err)
	}
	c.Close()
}

func TestGroupBadListenerStartsNothing(t *testing.T) {
	ca := newTestCA(t)
	cf, kf := writePairPEM(t, t.TempDir(), ca, false)
	probe, _ := net.Listen("tcp", "127.0.0.1:0")
	first := probe.Addr().String()
	probe.Close()
	cfg := &config.Config{
		Certificates: []config.Certificate{{Name: "backend", CertFile: cf, KeyFile: kf}},
		Listeners: []config.Listener{
			{Name: "good", Mode: "terminate", Listen: first, Targets: []string{"127.0.0.1:1"}, Certificate: "backend"},
			{Name: "bad", Mode: "terminate", Listen: "127.0.0.1:0", Targets: []string{"127.0.0.1:1"}, Certificate: "missing"},
		},
	}
	_, err := StartFromConfig(cfg, &rotate.Bus{}, prometheus.NewRegistry(), nil)
	if err == nil || !strings.Contains(err.Error(), `"missing"`) {
		t.Fatalf("StartFromConfig = %v, want an error naming the missing certificate", err)
	}
	time.Sleep(10 * time.Millisecond)
	ln, err := net.Listen("tcp", first)
	if err != nil {
		t.Fatalf("the valid listener %s stayed bound after the config was rejected: %v", first, err)
	}
	ln.Close()
}
