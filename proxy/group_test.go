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
	ls, err := NewListeners(prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	bus.Subscribe(ls)
	if err := ls.Apply(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	defer ls.Shutdown(context.Background())
	addr := ls.group.Addrs()[0].String()
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
	metrics, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	_, err = StartFromConfig(cfg, metrics, nil)
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

// TestListenersReloadKeepsOrReplaces: an unchanged config keeps the running
// group, a broken one keeps it too, a changed one replaces it on the same
// port and the bus reaches the new group.
func TestListenersReloadKeepsOrReplaces(t *testing.T) {
	ca := newTestCA(t)
	cf, kf := writePairPEM(t, t.TempDir(), ca, false)
	probe, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := probe.Addr().String()
	probe.Close()
	cfg := &config.Config{
		Certificates: []config.Certificate{{Name: "backend", CertFile: cf, KeyFile: kf}},
		Listeners:    []config.Listener{{Name: "api", Mode: "terminate", Listen: addr, Targets: []string{echoServer(t)}, Certificate: "backend"}},
	}
	ls, err := NewListeners(prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ls.Shutdown(context.Background())
	if err := ls.Apply(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	first := ls.group
	if err := ls.Apply(context.Background(), cfg); err != nil || ls.group != first {
		t.Fatalf("an unchanged config replaced the listeners (err %v)", err)
	}
	broken := *cfg
	broken.Listeners = []config.Listener{{Name: "api", Mode: "reverse", Listen: addr, Targets: []string{"127.0.0.1:1"}}}
	if err := ls.Apply(context.Background(), &broken); err == nil || !strings.Contains(err.Error(), "the running listeners stay") || ls.group != first {
		t.Fatalf("a broken config: %v; group replaced: %v", err, ls.group != first)
	}
	changed := *cfg
	changed.Listeners = []config.Listener{{Name: "api", Mode: "terminate", Listen: addr, Targets: []string{echoServer(t)}, Certificate: "backend", IdleTimeout: time.Minute}}
	if err := ls.Apply(context.Background(), &changed); err != nil || ls.group == first {
		t.Fatalf("a changed config did not replace the listeners: %v", err)
	}
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.pool(), ServerName: "localhost"})
	if err != nil {
		t.Fatalf("the replacement listener does not serve on %s: %v", addr, err)
	}
	c.Close()
}

// TestListenersReloadOnBusyPortRestoresPrevious: when the new listeners
// cannot bind (the port was taken meanwhile), the previous ones come back
// on their port instead of leaving the daemon without a proxy.
func TestListenersReloadOnBusyPortRestoresPrevious(t *testing.T) {
	ca := newTestCA(t)
	cf, kf := writePairPEM(t, t.TempDir(), ca, false)
	probe, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := probe.Addr().String()
	probe.Close()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cfg := &config.Config{
		Certificates: []config.Certificate{{Name: "backend", CertFile: cf, KeyFile: kf}},
		Listeners:    []config.Listener{{Name: "api", Mode: "terminate", Listen: addr, Targets: []string{echoServer(t)}, Certificate: "backend"}},
	}
	ls, err := NewListeners(prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ls.Shutdown(context.Background())
	if err := ls.Apply(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	moved := *cfg
	moved.Listeners = []config.Listener{cfg.Listeners[0]}
	moved.Listeners[0].Listen = busy.Addr().String()
	err = ls.Apply(context.Background(), &moved)
	if err == nil || !strings.Contains(err.Error(), "address already in use") || !strings.Contains(err.Error(), "the previous listeners are back") {
		t.Fatalf("Apply on a busy port = %v, want the bind error and the previous listeners back", err)
	}
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.pool(), ServerName: "localhost"})
	if err != nil {
		t.Fatalf("the previous listener does not serve on %s again: %v", addr, err)
	}
	c.Close()
	if err := ls.Check(&moved); err != nil {
		t.Errorf("Check binds nothing, so a busy port is no error there: %v", err)
	}
}
