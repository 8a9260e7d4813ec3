package proxy

import (
	"context"
	"crypto/tls"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sensu-tlsd/sensu-tlsd/config"
	"github.com/sensu-tlsd/sensu-tlsd/internal/event"
	"github.com/sensu-tlsd/sensu-tlsd/internal/testca"
)

// TestCARolloverReachesVerificationWithoutRestart: when a Change rewrites
// the CA bundle a listener verifies with, client certificates from the new
// CA are admitted (client-ca) and targets serving one are trusted
// (originate), on the running listeners.
func TestCARolloverReachesVerificationWithoutRestart(t *testing.T) {
	oldCA, newCA := testca.New(t), testca.New(t)
	dir := t.TempDir()
	cf, kf := writePairPEM(t, dir, oldCA, false)
	caFile := filepath.Join(dir, "ca.pem")
	writeFile(t, caFile, oldCA.PEM)

	newTarget := newCA.Pair(t, "backend", "127.0.0.1")
	tlsTarget, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{newTarget}})
	if err != nil {
		t.Fatal(err)
	}
	defer tlsTarget.Close()
	go func() {
		for {
			c, err := tlsTarget.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.(*tls.Conn).Handshake()
				c.Write([]byte("hello from the new backend"))
			}()
		}
	}()

	cfg := &config.Config{
		Certificates: []config.Certificate{{Name: "backend", CertFile: cf, KeyFile: kf, CAFile: caFile}},
		Listeners: []config.Listener{
			{Name: "agents", Mode: "terminate", Listen: "127.0.0.1:0", Targets: []string{echoServer(t)}, Certificate: "backend", ClientCA: caFile},
			{Name: "to-backend", Mode: "originate", Listen: "127.0.0.1:0", Targets: []string{tlsTarget.Addr().String()}, Certificate: "backend"},
		},
	}
	var bus event.Bus
	ls, err := NewListeners(prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	bus.Subscribe(ls)
	if err := apply(ls, cfg); err != nil {
		t.Fatal(err)
	}
	defer ls.Shutdown(context.Background())
	agents, toBackend := listenerAddr(ls, 0).String(), listenerAddr(ls, 1).String()

	newClient := newCA.Pair(t, "agent-1")
	oldClient := oldCA.Pair(t, "agent-2")
	handshake := func(client tls.Certificate) error {
		c, err := tls.Dial("tcp", agents, &tls.Config{RootCAs: oldCA.Pool(), ServerName: "localhost", Certificates: []tls.Certificate{client}})
		if err != nil {
			return err
		}
		defer c.Close()
		// TLS 1.3 reports a refused client certificate on the first read.
		c.Write([]byte("ping"))
		_, err = c.Read(make([]byte, 4))
		return err
	}
	viaOriginate := func() error {
		c, err := tlsDialPlain(toBackend)
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Read(make([]byte, 5))
		return err
	}
	if handshake(newClient) == nil || viaOriginate() == nil {
		t.Fatal("the new CA was trusted before the bundle held it")
	}
	if err := handshake(oldClient); err != nil {
		t.Fatalf("a client of the old CA was refused: %v", err)
	}

	// The rollover bundle: both CAs, as an operator publishes it.
	writeFile(t, caFile, append(append([]byte{}, oldCA.PEM...), newCA.PEM...))
	if err := bus.Publish(context.Background(), event.Change{Name: "backend", Reason: event.ReasonExternal,
		CertFile: cf, KeyFile: kf, CAFile: caFile, Files: []string{caFile}}); err != nil {
		t.Fatal(err)
	}
	for name, client := range map[string]tls.Certificate{"new": newClient, "old": oldClient} {
		if err := handshake(client); err != nil {
			t.Errorf("a client of the %s CA was refused after the rollover: %v", name, err)
		}
	}
	if err := viaOriginate(); err != nil {
		t.Errorf("the originate listener does not trust the new CA after the rollover: %v", err)
	}

	// A bundle that does not load never replaces the one in use.
	writeFile(t, caFile, []byte("not a certificate"))
	if err := bus.Publish(context.Background(), event.Change{Name: "backend", Files: []string{caFile}, CertFile: cf, KeyFile: kf}); err == nil {
		t.Error("a broken CA bundle was accepted without an error")
	}
	if err := handshake(newClient); err != nil {
		t.Errorf("a broken CA bundle replaced the working one: %v", err)
	}
}
