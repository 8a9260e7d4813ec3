package proxy

import (
	"crypto/tls"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sensu-tlsd/sensu-tlsd/internal/testca"
)

// TestHandshakeReasons fails a real handshake each way a client can and
// checks the failure is counted under its own reason, not "other".
func TestHandshakeReasons(t *testing.T) {
	ca, otherCA := testca.New(t), testca.New(t)
	dir := t.TempDir()
	cf, kf := writePairPEM(t, dir, ca, false)
	caFile := filepath.Join(dir, "ca.pem")
	writeFile(t, caFile, ca.PEM)
	trusted := func() *tls.Config { return &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"} }
	withCert := func(pair tls.Certificate, maxVersion uint16) *tls.Config {
		c := trusted()
		c.Certificates, c.MaxVersion = []tls.Certificate{pair}, maxVersion
		return c
	}
	agent := ca.Pair(t, "agent-1")
	stranger := otherCA.Pair(t, "agent-1")
	intruder := ca.Pair(t, "intruder")

	handshake := func(conf *tls.Config) func(string) {
		return func(addr string) {
			c, err := tls.Dial("tcp", addr, conf)
			if err == nil {
				// TLS 1.3 reports a refused client certificate on the first read.
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				c.Read(make([]byte, 1))
				c.Close()
			}
		}
	}
	send := func(b string) func(string) {
		return func(addr string) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			c.Write([]byte(b))
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			io.ReadAll(c)
			c.Close()
		}
	}
	for i, tc := range []struct {
		reason string
		spec   Spec
		client func(addr string)
	}{
		{"timeout", Spec{HandshakeTimeout: 100 * time.Millisecond}, send("")},
		{"client-closed", Spec{}, func(addr string) {
			c, _ := net.Dial("tcp", addr)
			c.Write([]byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01})
			c.Close()
		}},
		{"not-tls", Spec{}, send("GET / HTTP/1.0\r\n\r\n")},
		{"unknown-protocol", Spec{Mode: "dual"}, send("\x00\x01\x02\x03 garbage")},
		{"plaintext-refused", Spec{Mode: "dual"}, send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")},
		{"protocol-version", Spec{}, handshake(&tls.Config{RootCAs: ca.Pool(), ServerName: "localhost",
			MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11})},
		{"protocol-version", Spec{TLS13Only: true}, handshake(&tls.Config{RootCAs: ca.Pool(), ServerName: "localhost", MaxVersion: tls.VersionTLS12})},
		{"no-shared-cipher", Spec{}, handshake(&tls.Config{RootCAs: ca.Pool(), ServerName: "localhost", MaxVersion: tls.VersionTLS12,
			CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}})},
		{"no-shared-alpn", Spec{ALPN: []string{"http/1.1"}}, handshake(&tls.Config{RootCAs: ca.Pool(), ServerName: "localhost", NextProtos: []string{"h2"}})},
		{"no-client-certificate", Spec{ClientCAFile: caFile}, handshake(trusted())},
		{"no-client-certificate", Spec{ClientCAFile: caFile}, handshake(&tls.Config{RootCAs: ca.Pool(), ServerName: "localhost", MaxVersion: tls.VersionTLS12})},
		{"bad-client-certificate", Spec{ClientCAFile: caFile}, handshake(withCert(stranger, tls.VersionTLS13))},
		{"bad-client-certificate", Spec{ClientCAFile: caFile}, handshake(withCert(stranger, tls.VersionTLS12))},
		{"client-not-allowed", Spec{ClientCAFile: caFile, AllowCN: []string{"agent-1"}}, handshake(withCert(intruder, tls.VersionTLS13))},
		{"client-alert", Spec{}, handshake(&tls.Config{RootCAs: otherCA.Pool(), ServerName: "localhost"})},
		{"certificate-pending", Spec{CertFile: filepath.Join(dir, "later.pem"), KeyFile: filepath.Join(dir, "later-key.pem"), CertMayBePending: true}, handshake(trusted())},
	} {
		spec := tc.spec
		spec.Name, spec.Listen, spec.Targets = "h", "127.0.0.1:0", []string{echoServer(t)}
		if spec.Mode == "" {
			spec.Mode = "terminate"
		}
		if spec.CertFile == "" {
			spec.CertFile, spec.KeyFile = cf, kf
		}
		m, err := NewMetrics(prometheus.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		opt, _, err := buildOptions(spec, m, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, addr := startServer(t, opt)
		tc.client(addr)
		got := func() float64 { return testutil.ToFloat64(m.handshakeFailures.WithLabelValues("h", tc.reason)) }
		deadline := time.Now().Add(5 * time.Second)
		for got() != 1 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if got() != 1 {
			t.Errorf("case %d: counted %v under %q, %v under other", i, got(), tc.reason,
				testutil.ToFloat64(m.handshakeFailures.WithLabelValues("h", "other")))
		}
	}
	// The mTLS listener still admits the client it is for.
	opt, _, err := buildOptions(Spec{Name: "ok", Mode: "terminate", Listen: ":0", Targets: []string{echoServer(t)}, CertFile: cf, KeyFile: kf,
		ClientCAFile: caFile, AllowCN: []string{"agent-1"}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, addr := startServer(t, opt)
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		c, err := tls.Dial("tcp", addr, withCert(agent, v))
		if err != nil {
			t.Fatalf("the allowed client certificate was refused (version %x): %v", v, err)
		}
		c.Write([]byte("ping"))
		if _, err := io.ReadFull(c, make([]byte, 4)); err != nil {
			t.Fatalf("the allowed client's session (version %x): %v", v, err)
		}
		c.Close()
	}
}

// TestSessionResumption: TLS 1.2 and 1.3 clients resume their session on
// the next connection, also on an mTLS listener after its CA bundle was
// reloaded (the per-handshake config keeps the original ticket keys).
func TestSessionResumption(t *testing.T) {
	ca := testca.New(t)
	dir := t.TempDir()
	cf, kf := writePairPEM(t, dir, ca, false)
	caFile := filepath.Join(dir, "ca.pem")
	writeFile(t, caFile, ca.PEM)
	client := ca.Pair(t, "agent-1")
	for _, mtls := range []bool{false, true} {
		spec := Spec{Name: "r", Mode: "terminate", Listen: ":0", Targets: []string{echoServer(t)}, CertFile: cf, KeyFile: kf}
		if mtls {
			spec.ClientCAFile = caFile
		}
		opt, files, err := buildOptions(spec, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, addr := startServer(t, opt)
		for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
			conf := &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost", MaxVersion: v,
				Certificates: []tls.Certificate{client}, ClientSessionCache: tls.NewLRUClientSessionCache(4)}
			connect := func() bool {
				c, err := tls.Dial("tcp", addr, conf)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				// A TLS 1.3 ticket arrives after the handshake; reading
				// the echo takes it in.
				c.Write([]byte("ping"))
				if _, err := io.ReadFull(c, make([]byte, 4)); err != nil {
					t.Fatal(err)
				}
				return c.ConnectionState().DidResume
			}
			if connect() {
				t.Fatalf("mtls=%v version %x: the first connection resumed a session it never had", mtls, v)
			}
			if !connect() {
				t.Errorf("mtls=%v version %x: the second connection did not resume its session", mtls, v)
			}
			if mtls {
				other := testca.New(t)
				writeFile(t, caFile, append(append([]byte{}, ca.PEM...), other.PEM...))
				if err := files.CA.Reload(); err != nil {
					t.Fatal(err)
				}
				if !connect() {
					t.Errorf("version %x: no resumption after the client CA bundle was reloaded", v)
				}
				writeFile(t, caFile, ca.PEM)
				files.CA.Reload()
			}
		}
	}
}

// TestALPN: with no list nothing is negotiated, so a client offering h2
// speaks HTTP/1.1 to the plaintext target; with a list the proxy picks
// from it and refuses clients offering none of it; originate offers its
// list to the targets and nothing by default.
func TestALPN(t *testing.T) {
	ca := testca.New(t)
	cf, kf := writePairPEM(t, t.TempDir(), ca, false)
	terminate := func(alpn []string) string {
		opt, _, err := buildOptions(Spec{Name: "a", Mode: "terminate", Listen: ":0", Targets: []string{echoServer(t)}, CertFile: cf, KeyFile: kf, ALPN: alpn}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, addr := startServer(t, opt)
		return addr
	}
	negotiated := func(addr string, offer ...string) (string, error) {
		c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost", NextProtos: offer})
		if err != nil {
			return "", err
		}
		defer c.Close()
		return c.ConnectionState().NegotiatedProtocol, nil
	}
	if p, err := negotiated(terminate(nil), "h2", "http/1.1"); err != nil || p != "" {
		t.Errorf("default terminate negotiated %q, %v; want no protocol", p, err)
	}
	h1 := terminate([]string{"http/1.1"})
	if p, err := negotiated(h1, "h2", "http/1.1"); err != nil || p != "http/1.1" {
		t.Errorf("alpn http/1.1 with a browser-like client: %q, %v", p, err)
	}
	if _, err := negotiated(h1, "h2"); err == nil {
		t.Error("an h2-only client got through to an HTTP/1.1 target")
	}

	pair := ca.Pair(t, "backend", "127.0.0.1")
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair}, NextProtos: []string{"h2", "http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	chosen := make(chan string, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			tc := c.(*tls.Conn)
			if tc.Handshake() == nil {
				chosen <- tc.ConnectionState().NegotiatedProtocol
			}
			tc.Close()
		}
	}()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, ca.PEM, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		alpn []string
		want string
	}{{nil, ""}, {[]string{"http/1.1"}, "http/1.1"}} {
		opt, _, err := buildOptions(Spec{Name: "o", Mode: "originate", Listen: ":0", Targets: []string{ln.Addr().String()}, CAFile: caFile, ALPN: tc.alpn}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, addr := startServer(t, opt)
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		select {
		case got := <-chosen:
			if got != tc.want {
				t.Errorf("originate with alpn %v: the h2-capable backend chose %q, want %q", tc.alpn, got, tc.want)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("originate never reached the backend")
		}
		c.Close()
	}
}
