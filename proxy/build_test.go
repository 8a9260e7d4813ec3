package proxy

import (
	"crypto/tls"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sensu-tlsd/sensu-tlsd/config"
	"github.com/sensu-tlsd/sensu-tlsd/internal/testca"
)

func TestBuildFromConfigListener(t *testing.T) {
	ca := testca.New(t)
	cf, kf := writePairPEM(t, t.TempDir(), ca, false)
	l := config.Listener{Name: "sensu-agent", Mode: "dual", Listen: "127.0.0.1:0", Targets: []string{echoServer(t)},
		Certificate: "backend", AllowPlain: true, AgentHeaders: true, IdleTimeout: time.Minute}
	spec := SpecFromConfig(l, config.Certificate{Name: "backend", CertFile: cf, KeyFile: kf})
	s, files, err := Build(spec, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if files.Cert == nil || files.Cert.Certificate() == nil {
		t.Fatal("Build returned no certificate source for a dual listener")
	}
	if _, ok := s.options().Mode.(*Dual); !ok || !s.options().AgentHeaders || s.options().IdleTimeout != time.Minute {
		t.Fatalf("listener built as %T %+v", s.options().Mode, s.options())
	}
}

func TestBuildRejectsBadSpecsWithTheFix(t *testing.T) {
	ca := testca.New(t)
	cf, kf := writePairPEM(t, t.TempDir(), ca, false)
	for _, tc := range []struct {
		spec Spec
		want string
	}{
		{Spec{Name: "a", Mode: "terminate", Listen: "nope", Targets: []string{"127.0.0.1:1"}}, `listen "nope" is not host:port`},
		{Spec{Name: "a", Mode: "terminate", Listen: ":1"}, "no target"},
		{Spec{Name: "a", Mode: "terminate", Listen: ":1", Targets: []string{"127.0.0.1:1", "127.0.0.1:2"}, CertFile: cf, KeyFile: kf}, "exactly one plaintext target"},
		{Spec{Name: "a", Mode: "originate", Listen: ":1", Targets: []string{"127.0.0.1:1"}, ClientCAFile: cf}, "mode originate takes plaintext clients"},
		{Spec{Name: "a", Mode: "dual", Listen: ":1", Targets: []string{"127.0.0.1:1"}, CertFile: cf}, "give both files"},
		{Spec{Name: "a", Mode: "dual", Listen: ":1", Targets: []string{"127.0.0.1:1"}, CertFile: cf, KeyFile: kf, ClientCAFile: kf}, "no PEM certificate found: expected a -----BEGIN CERTIFICATE----- block"},
		{Spec{Name: "a", Mode: "reverse", Listen: ":1", Targets: []string{"127.0.0.1:1"}}, "use terminate, originate or dual"},
		// Settings that do nothing in the mode are errors naming the right one.
		{Spec{Name: "a", Mode: "terminate", Listen: ":1", Targets: []string{"127.0.0.1:1"}, CertFile: cf, KeyFile: kf, CAFile: cf}, "give --client-ca (config key client-ca) instead"},
		{Spec{Name: "a", Mode: "dual", Listen: ":1", Targets: []string{"127.0.0.1:1"}, CertFile: cf, KeyFile: kf, CAFile: cf}, "--ca (config key target-ca) verifies the TLS targets of mode originate"},
		{Spec{Name: "a", Mode: "terminate", Listen: ":1", Targets: []string{"127.0.0.1:1"}, CertFile: cf, KeyFile: kf, AllowPlaintext: true}, "--allow-plaintext (config key allow-plaintext) applies to mode dual only"},
		{Spec{Name: "a", Mode: "originate", Listen: ":1", Targets: []string{"127.0.0.1:1"}, AllowPlaintext: true}, "--allow-plaintext (config key allow-plaintext) applies to mode dual only"},
		{Spec{Name: "a", Mode: "terminate", Listen: ":1", Targets: []string{"127.0.0.1:1"}, CertFile: cf, KeyFile: kf, ServerName: "backend"}, "--server-name (config key server-name) is the name mode originate verifies"},
		{Spec{Name: "a", Mode: "dual", Listen: ":1", Targets: []string{"127.0.0.1:1"}, CertFile: cf, KeyFile: kf, TargetOrder: "spread"}, "--target-order (config key target-order) orders the targets of mode originate"},
		{Spec{Name: "a", Mode: "originate", Listen: ":1", Targets: []string{"127.0.0.1:1"}, TargetOrder: "random"}, `"random" is unknown; use in-order`},
		{Spec{Name: "a", Mode: "terminate", Listen: ":1", Targets: []string{"127.0.0.1:1"}, CertFile: cf, KeyFile: cf}, "give the PEM certificate chain (leaf first)"},
		{Spec{Name: "a", Mode: "terminate", Listen: ":1", Targets: []string{"127.0.0.1:1"}, CertFile: cf + ".missing", KeyFile: kf}, "check the path"},
	} {
		_, _, err := Build(tc.spec, nil, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), `"a"`) {
			t.Errorf("Build(%+v) = %v; want an error naming the listener and %q", tc.spec, err, tc.want)
		}
	}
}

// TestConfigListenersRejectIgnoredSettings: the same checks reach config
// listeners, named by their index and name.
func TestConfigListenersRejectIgnoredSettings(t *testing.T) {
	ca := testca.New(t)
	cf, kf := writePairPEM(t, t.TempDir(), ca, false)
	ls, err := NewListeners(prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		l    config.Listener
		want string
	}{
		{config.Listener{Mode: "terminate", TargetCA: cf}, "config key target-ca"},
		{config.Listener{Mode: "terminate", AllowPlain: true}, "config key allow-plaintext"},
		{config.Listener{Mode: "dual", ServerName: "x"}, "config key server-name"},
		{config.Listener{Mode: "originate", TargetOrder: "sideways"}, "config key target-order"},
	} {
		tc.l.Name, tc.l.Listen, tc.l.Targets, tc.l.Certificate = "edge", "127.0.0.1:0", []string{"127.0.0.1:1"}, "backend"
		cfg := &config.Config{Certificates: []config.Certificate{{Name: "backend", CertFile: cf, KeyFile: kf, CAFile: cf}}, Listeners: []config.Listener{tc.l}}
		if _, err := ls.Prepare(cfg); err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "listeners[0] (edge)") {
			t.Errorf("Prepare(%+v) = %v; want an error naming listeners[0] (edge) and %q", tc.l, err, tc.want)
		}
	}
}

func TestOriginatePresentsClientCertificate(t *testing.T) {
	ca := testca.New(t)
	backendPair := ca.Pair(t, "backend", "127.0.0.1")
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{backendPair},
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: ca.Pool()})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	gotCN := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		tc := c.(*tls.Conn)
		if tc.Handshake() == nil {
			gotCN <- tc.ConnectionState().PeerCertificates[0].Subject.CommonName
		}
	}()
	clientPair := ca.Pair(t, "proxy-client")
	_, addr := startServer(t, Options{Mode: &Originate{TLS: clientTLSConfig(Policy{}, ca.Pool(), staticSource{&clientPair}), Targets: []string{ln.Addr().String()}}})
	c, err := tlsDialPlain(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	select {
	case cn := <-gotCN:
		if cn != "proxy-client" {
			t.Fatalf("target saw client certificate %q", cn)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("target never completed an mTLS handshake with the originate proxy")
	}
}
