package agentcutover

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/internal/pki"
	"github.com/sensu-tlsd/sensu-tlsd/rotate/ca"
)

// backendCA is a CA and a TLS listener serving a certificate it issued.
type backendCA struct {
	ca   *ca.CA
	pem  []byte // the CA certificate
	fp   pki.Fingerprint
	addr string
}

// startBackend serves TLS on loopback with a certificate for hosts from a
// new CA, the CA after the leaf when withCA.
func startBackend(t *testing.T, hosts []string, withCA bool) *backendCA {
	t.Helper()
	c, err := ca.Init(t.TempDir(), ca.InitOptions{CommonName: "test CA", Lifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return serve(t, c, hosts, withCA)
}

// serve is a TLS listener with a certificate c issues for hosts.
func serve(t *testing.T, c *ca.CA, hosts []string, withCA bool) *backendCA {
	t.Helper()
	is, err := c.Issue(ca.Request{Name: "backend-1", Profile: pki.Backend, Hosts: hosts, Lifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	chain := is.CertPEM
	if withCA {
		chain = append(append([]byte(nil), chain...), is.CAPEM...)
	}
	pair, err := tls.X509KeyPair(chain, is.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { conn.(*tls.Conn).Handshake(); conn.Close() }()
		}
	}()
	caCerts, err := pki.ParseCertificatesPEM(is.CAPEM)
	if err != nil {
		t.Fatal(err)
	}
	return &backendCA{ca: c, pem: is.CAPEM, fp: pki.FingerprintOf(caCerts[0]), addr: ln.Addr().String()}
}

func writeFile(t *testing.T, path string, data []byte) string {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestWrongPinIsRefusedWithBothFingerprints(t *testing.T) {
	b := startBackend(t, []string{"127.0.0.1"}, true)
	wrong, _ := pki.ParseFingerprintSHA256(strings.Repeat("ab", 32))
	trust := Trust{CAFile: filepath.Join(t.TempDir(), "ca.pem"), Pin: &wrong}
	probes, ca, err := trust.ProbeAll(context.Background(), []string{"ws://" + b.addr})
	if err != nil || ca != nil {
		t.Fatalf("ProbeAll: %v, CA %q", err, ca)
	}
	var pinErr *PinError
	if !errors.As(probes[0], &pinErr) {
		t.Fatalf("probe: %v, want a *PinError", probes[0])
	}
	for _, want := range []string{"expected " + wrong.String(), "seen ", b.fp.String() + " (test CA)", b.addr} {
		if !strings.Contains(probes[0].Error(), want) {
			t.Errorf("refusal does not say %q: %v", want, probes[0])
		}
	}
	if _, err := os.Stat(trust.CAFile); err == nil {
		t.Error("a CA file was written")
	}
}

func TestRightPinTakesTheCAFromTheHandshake(t *testing.T) {
	b := startBackend(t, []string{"127.0.0.1"}, true)
	trust := Trust{CAFile: filepath.Join(t.TempDir(), "ca.pem"), Pin: &b.fp}
	probes, ca, err := trust.ProbeAll(context.Background(), []string{"ws://" + b.addr, "ws://" + b.addr + "/"})
	if err != nil || probes[0] != nil || probes[1] != nil {
		t.Fatalf("ProbeAll: %v, %v", err, probes)
	}
	if string(ca) != string(b.pem) {
		t.Errorf("CA taken:\n%s\nwant:\n%s", ca, b.pem)
	}
}

// A backend whose chain stops at the leaf cannot supply the pinned CA.
func TestPinNeedsTheCAInTheChain(t *testing.T) {
	b := startBackend(t, []string{"127.0.0.1"}, false)
	trust := Trust{CAFile: filepath.Join(t.TempDir(), "ca.pem"), Pin: &b.fp}
	probes, _, _ := trust.ProbeAll(context.Background(), []string{"ws://" + b.addr})
	if probes[0] == nil || !strings.Contains(probes[0].Error(), "carries its CA after the leaf") {
		t.Errorf("probe of a leaf-only chain: %v", probes[0])
	}
}

func TestProbeVerifiesAgainstThePlacedCAFile(t *testing.T) {
	dir := t.TempDir()
	good := startBackend(t, []string{"127.0.0.1"}, false)
	other := startBackend(t, []string{"127.0.0.1"}, false)
	wrongHost := serve(t, good.ca, []string{"backend-9.example"}, false)
	trust := Trust{CAFile: writeFile(t, filepath.Join(dir, "ca.pem"), good.pem)}
	probes, ca, err := trust.ProbeAll(context.Background(), []string{"ws://" + good.addr, "ws://" + other.addr, "ws://" + wrongHost.addr})
	if err != nil || ca != nil {
		t.Fatalf("ProbeAll: %v, CA %q", err, ca)
	}
	if probes[0] != nil {
		t.Errorf("backend of the placed CA: %v", probes[0])
	}
	if probes[1] == nil || !strings.Contains(probes[1].Error(), "unknown authority") {
		t.Errorf("backend of another CA: %v", probes[1])
	}
	if probes[2] == nil || !strings.Contains(probes[2].Error(), "127.0.0.1 because") {
		t.Errorf("a certificate that does not cover 127.0.0.1: %v", probes[2])
	}

	pin := other.fp
	trust.Pin = &pin
	if _, _, err := trust.ProbeAll(context.Background(), []string{"ws://" + good.addr}); err == nil || !strings.Contains(err.Error(), "holds no CA with the pinned fingerprint") {
		t.Errorf("a placed CA file without the pinned CA: %v", err)
	}
}

func TestMissingCAFileWithoutPin(t *testing.T) {
	trust := Trust{CAFile: filepath.Join(t.TempDir(), "ca.pem")}
	_, _, err := trust.ProbeAll(context.Background(), []string{"ws://127.0.0.1:1"})
	if err == nil || !strings.Contains(err.Error(), trust.CAFile+" does not exist") || !strings.Contains(err.Error(), "ca-fingerprint-sha256") {
		t.Errorf("missing CA file: %v", err)
	}
}

// restarts records what the follower asked of sensu-agent's service and
// answers with err: the unit under test is the follower's decision, the
// service action itself is tested through the binary.
type restarts struct {
	urls []string
	err  []error
}

func (r *restarts) Restart(_ context.Context, url string, _ time.Duration) error {
	r.urls = append(r.urls, url)
	if len(r.err) == 0 {
		return nil
	}
	err := r.err[0]
	r.err = r.err[1:]
	return err
}

func followerSettings(t *testing.T, agentYML string, b *backendCA, r Restarter) Settings {
	dir := t.TempDir()
	return Settings{Enabled: true, AgentConfig: writeFile(t, filepath.Join(dir, "agent.yml"), []byte(agentYML)),
		AgentEnvFiles: []string{filepath.Join(dir, "sensu-agent")},
		Trust:         Trust{CAFile: writeFile(t, filepath.Join(dir, "ca.pem"), b.pem)},
		Interval:      time.Second, ReconnectTimeout: time.Second, StateFile: filepath.Join(dir, "state", "agent-cutover.json"), Restarter: r}
}

func TestSwitchKeepsEveryMemberAndGoesBackWhenTheAgentDoesNotReconnect(t *testing.T) {
	b := startBackend(t, []string{"127.0.0.1"}, false)
	yml := "backend-url:\n  - ws://" + b.addr + "\n  - ws://" + b.addr + "/\napi-port: 3999\n"
	r := &restarts{err: []error{errors.New("not healthy within 1s")}}
	s := followerSettings(t, yml, b, r)
	f := New(slog.New(slog.DiscardHandler), nil)

	st := f.Step(context.Background(), s)
	if st.State != StateRolledBack || !strings.Contains(st.Detail, "not healthy within 1s") || !strings.Contains(st.Detail, "reconnected on them") || !strings.Contains(st.Detail, "trying again in 2s") {
		t.Fatalf("step after a failed reconnect: %+v", st)
	}
	if got, _ := os.ReadFile(s.AgentConfig); string(got) != yml {
		t.Errorf("agent.yml not put back:\n%s", got)
	}
	if len(r.urls) != 2 || r.urls[0] != "http://127.0.0.1:3999/healthz" {
		t.Errorf("restarts: %v, want two (switch, back) checking the api-port agent.yml sets", r.urls)
	}

	st = f.Step(context.Background(), s)
	got, _ := os.ReadFile(s.AgentConfig)
	if st.State != StateSwitched || st.Switched.IsZero() || strings.Count(string(got), "wss://"+b.addr) != 2 || !strings.Contains(string(got), "trusted-ca-file: "+s.Trust.CAFile) {
		t.Fatalf("second step: %+v\n%s", st, got)
	}
	if saved, err := ReadStatus(s.StateFile); err != nil || saved.State != StateSwitched {
		t.Errorf("state file: %+v, %v", saved, err)
	}
	before := len(r.urls)
	if st := f.Step(context.Background(), s); st.State != StateSwitched || len(r.urls) != before {
		t.Errorf("a switched node is left alone: %+v, restarts %d", st, len(r.urls)-before)
	}
}

// backend-url in the unit's environment file wins over agent.yml, so the
// switch must happen there.
func TestSwitchEditsTheEnvironmentFileThatSetsBackendURL(t *testing.T) {
	b := startBackend(t, []string{"127.0.0.1"}, false)
	r := &restarts{}
	s := followerSettings(t, "backend-url: [ws://127.0.0.1:1]\n", b, r)
	writeFile(t, s.AgentEnvFiles[0], []byte("SENSU_BACKEND_URL=\"ws://"+b.addr+" ws://"+b.addr+"/\"\n"))
	if st := New(slog.New(slog.DiscardHandler), nil).Step(context.Background(), s); st.State != StateSwitched {
		t.Fatalf("step: %+v", st)
	}
	env, _ := os.ReadFile(s.AgentEnvFiles[0])
	if !strings.Contains(string(env), "wss://"+b.addr+" wss://"+b.addr+"/") {
		t.Errorf("environment file after the switch:\n%s", env)
	}
}

// An environment file that only turns verification off gets it turned on,
// and no backend-url of its own: agent.yml's members stay in force.
func TestSwitchLeavesAgentYMLsMembersWhenTheEnvironmentFileSetsNone(t *testing.T) {
	b := startBackend(t, []string{"127.0.0.1"}, false)
	s := followerSettings(t, "backend-url:\n  - ws://"+b.addr+"\n  - ws://"+b.addr+"/\n", b, &restarts{})
	writeFile(t, s.AgentEnvFiles[0], []byte("SENSU_INSECURE_SKIP_TLS_VERIFY=true\n"))
	if st := New(slog.New(slog.DiscardHandler), nil).Step(context.Background(), s); st.State != StateSwitched {
		t.Fatalf("step: %+v", st)
	}
	env, _ := os.ReadFile(s.AgentEnvFiles[0])
	yml, _ := os.ReadFile(s.AgentConfig)
	if strings.Contains(string(env), "BACKEND_URL") || !strings.Contains(string(env), "SENSU_INSECURE_SKIP_TLS_VERIFY=false") || strings.Count(string(yml), "wss://") != 2 {
		t.Errorf("after the switch:\n%s\n%s", env, yml)
	}
}

func TestWaitsWhileABackendIsPlaintext(t *testing.T) {
	b := startBackend(t, []string{"127.0.0.1"}, false)
	plain, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	go func() {
		for {
			c, err := plain.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("HTTP/1.1 400 Bad Request\r\n\r\n"))
			c.Close()
		}
	}()
	r := &restarts{}
	yml := "backend-url: [ws://" + b.addr + ", ws://" + plain.Addr().String() + "]\n"
	s := followerSettings(t, yml, b, r)
	st := New(slog.New(slog.DiscardHandler), nil).Step(context.Background(), s)
	if st.State != StateWaiting || !strings.Contains(st.Detail, plain.Addr().String()) || len(r.urls) != 0 {
		t.Fatalf("step with one plaintext backend: %+v, restarts %v", st, r.urls)
	}
	if got, _ := os.ReadFile(s.AgentConfig); string(got) != yml {
		t.Errorf("agent.yml changed:\n%s", got)
	}
}
