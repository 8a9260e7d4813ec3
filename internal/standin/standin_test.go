package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/sensu-tlsd/sensu-tlsd/internal/logbuf"
	"github.com/sensu-tlsd/sensu-tlsd/internal/standintest"
	"github.com/sensu-tlsd/sensu-tlsd/internal/testca"
	"github.com/sensu-tlsd/sensu-tlsd/internal/testpeer"
)

type fixture struct {
	dir              string
	ca               *testca.CA
	set              testca.Set
	cfg              string
	apiPort, agtPort int
}

func newFixture(t *testing.T, tlsOn bool) fixture {
	t.Helper()
	f := fixture{dir: t.TempDir(), apiPort: testpeer.FreePort(t), agtPort: testpeer.FreePort(t)}
	if tlsOn {
		f.ca = testca.New(t)
		f.set = f.ca.WriteSet(t, f.dir, "backend", "backend-1")
	}
	f.cfg = filepath.Join(f.dir, "backend.yml")
	standintest.BackendYML(t, f.cfg, f.set, f.apiPort, f.agtPort)
	return f
}

// start runs the stand-in in-process until the test ends and waits until
// it answers /health.
func (f fixture) start(t *testing.T, extra ...string) *logbuf.Buffer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logs := &logbuf.Buffer{}
	done := make(chan error, 1)
	go func() { done <- runBackend(ctx, append([]string{"-c", f.cfg}, extra...), logs) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("stand-in ended with %v\n%s", err, logs)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if strings.Contains(logs.String(), "msg=serving") {
			return logs
		}
		select {
		case err := <-done:
			t.Fatalf("stand-in stopped at start: %v\n%s", err, logs)
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("stand-in did not start\n%s", logs)
	return nil
}

func (f fixture) client() *http.Client {
	tr := &http.Transport{}
	if f.ca != nil {
		pool := x509.NewCertPool()
		pool.AddCert(f.ca.Cert)
		tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	}
	return &http.Client{Transport: tr, Timeout: 5 * time.Second}
}

func (f fixture) url(port int, path string) string {
	scheme := "http"
	if f.ca != nil {
		scheme = "https"
	}
	return fmt.Sprintf("%s://127.0.0.1:%d%s", scheme, port, path)
}

func TestHealthOverTLSOnBothPortsShowsTheStartSerial(t *testing.T) {
	f := newFixture(t, true)
	f.start(t)
	for _, port := range []int{f.apiPort, f.agtPort} {
		resp, err := f.client().Get(f.url(port, "/health"))
		if err != nil {
			t.Fatal(err)
		}
		var body struct{ ClusterHealth []struct{ Healthy bool } }
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || len(body.ClusterHealth) != 1 || !body.ClusterHealth[0].Healthy {
			t.Fatalf("port %d: /health status %d body %+v err %v", port, resp.StatusCode, body, err)
		}
		if got := hex.EncodeToString(resp.TLS.PeerCertificates[0].SerialNumber.Bytes()); got != f.set.Serial {
			t.Fatalf("port %d serves serial %s, want %s", port, got, f.set.Serial)
		}
		if resp.TLS.Version < tls.VersionTLS12 {
			t.Fatalf("TLS version %x below 1.2", resp.TLS.Version)
		}
	}
}

func TestRejectsTLSBelow12(t *testing.T) {
	f := newFixture(t, true)
	f.start(t)
	_, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", f.apiPort), &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS11})
	if err == nil {
		t.Fatal("a TLS 1.1 handshake succeeded")
	}
}

func TestCertificatesAreReadOnlyAtStart(t *testing.T) {
	f := newFixture(t, true)
	f.start(t)
	newer := f.ca.WriteSet(t, f.dir, "backend", "backend-2")
	resp, err := f.client().Get(f.url(f.apiPort, "/health"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := hex.EncodeToString(resp.TLS.PeerCertificates[0].SerialNumber.Bytes()); got != f.set.Serial || got == newer.Serial {
		t.Fatalf("after replacing the files the stand-in serves %s; want the start serial %s (new one is %s)", got, f.set.Serial, newer.Serial)
	}
}

func TestPlaintextWithoutCertFile(t *testing.T) {
	f := newFixture(t, false)
	f.start(t)
	resp, err := f.client().Get(f.url(f.agtPort, "/health"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.TLS != nil {
		t.Fatalf("plaintext /health: status %d tls %v", resp.StatusCode, resp.TLS != nil)
	}
}

func TestPlainHTTPToTLSPortIs400(t *testing.T) {
	f := newFixture(t, true)
	f.start(t)
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/health", f.apiPort))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("plain HTTP to the TLS port: %d, want 400", resp.StatusCode)
	}
}

func agentHeaders(user, pass string) http.Header {
	h := http.Header{}
	h.Set("Sensu-AgentName", "agent-1")
	h.Set("Sensu-Namespace", "default")
	h.Set("Sensu-User", user)
	h.Set("Sensu-Subscriptions", "linux,entity:agent-1")
	h.Set("Accept", "application/octet-stream")
	if user != "" {
		h.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(user+":"+pass)))
	}
	return h
}

func TestAgentWebsocket(t *testing.T) {
	f := newFixture(t, true)
	f.start(t)
	wsURL := fmt.Sprintf("wss://127.0.0.1:%d/", f.agtPort)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	for _, c := range []struct {
		name       string
		user, pass string
		status     int
	}{
		{"no credentials", "", "", http.StatusUnauthorized},
		{"bad password", "agent", "wrong", http.StatusUnauthorized},
	} {
		_, resp, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{HTTPClient: f.client(), HTTPHeader: agentHeaders(c.user, c.pass)})
		if err == nil || resp == nil || resp.StatusCode != c.status {
			t.Fatalf("%s: err %v resp %v, want status %d", c.name, err, resp, c.status)
		}
	}

	h := agentHeaders("agent", "P@ssw0rd!")
	h.Set("Sensu-Namespace", "nope")
	if _, resp, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{HTTPClient: f.client(), HTTPHeader: h}); err == nil || resp.StatusCode != http.StatusNotFound {
		t.Fatalf("unknown namespace: err %v resp %v, want 404", err, resp)
	}

	conn, resp, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{HTTPClient: f.client(), HTTPHeader: agentHeaders("agent", "P@ssw0rd!")})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	if resp.Header.Get("Backend-ID") == "" {
		t.Fatal("no Backend-ID header in the upgrade answer")
	}
	if err := conn.Write(ctx, websocket.MessageBinary, []byte("keepalive")); err != nil {
		t.Fatal(err)
	}
	if _, msg, err := conn.Read(ctx); err != nil || string(msg) != "keepalive" {
		t.Fatalf("echo: %q %v", msg, err)
	}
}

func TestDeliberateFailures(t *testing.T) {
	f := newFixture(t, true)
	for _, args := range [][]string{
		{"--fail-if-cert-cn", "backend-1"},
		{"--fail-if-serial", strings.ToUpper(f.set.Serial)},
	} {
		err := runBackend(context.Background(), append([]string{"-c", f.cfg}, args...), &logbuf.Buffer{})
		var df deliberateFailure
		if !errors.As(err, &df) || exitCode(err) != 3 {
			t.Fatalf("%v: got %v (exit %d), want a deliberate failure with exit 3", args, err, exitCode(err))
		}
	}
	// A CN that does not match starts normally.
	f.start(t, "--fail-if-cert-cn", "someone-else")
}

func TestUnhealthyOnPurpose(t *testing.T) {
	f := newFixture(t, true)
	f.start(t, "--unhealthy-if-cert-cn", "backend-1")
	resp, err := f.client().Get(f.url(f.apiPort, "/health"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("/health %d, want 503", resp.StatusCode)
	}
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	half := filepath.Join(dir, "half.yml")
	standintest.BackendYML(t, half, testca.Set{}, 1, 2)
	appendFile(t, half, "cert-file: /x.pem\n")
	for name, args := range map[string][]string{
		"no -c":            nil,
		"missing file":     {"-c", filepath.Join(dir, "absent.yml")},
		"cert without key": {"-c", half},
	} {
		err := runBackend(context.Background(), args, &logbuf.Buffer{})
		if exitCode(err) != 2 {
			t.Fatalf("%s: %v (exit %d), want exit 2", name, err, exitCode(err))
		}
	}
}

// TestBinarySignals runs the built stand-in: SIGHUP leaves it serving the
// same certificate, SIGTERM ends it with status 0.
func TestBinarySignals(t *testing.T) {
	f := newFixture(t, true)
	var out logbuf.Buffer
	cmd := exec.Command(standintest.Binary(t), "-c", f.cfg)
	cmd.Stderr = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	waitHealthy(t, f)
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	waitHealthy(t, f)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("after SIGTERM: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "SIGHUP") {
		t.Fatalf("SIGHUP not logged:\n%s", out.String())
	}
}

func waitHealthy(t *testing.T, f fixture) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := f.client().Get(f.url(f.apiPort, "/health"))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("stand-in not healthy: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func appendFile(t *testing.T, path, text string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
}

// TestAgentDiesOnSIGHUP checks the agent stand-in behaves like sensu-agent:
// /healthz answers, SIGHUP ends it with 129 and leaves a trace in the
// hup file, SIGTERM ends it with 0.
func TestAgentDiesOnSIGHUP(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGHUP, syscall.SIGTERM} {
		port := testpeer.FreePort(t)
		hupFile := filepath.Join(t.TempDir(), "hup")
		cmd := exec.Command(standintest.Binary(t), "agent", "--api-port", fmt.Sprint(port), "--hup-file", hupFile)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(20 * time.Second)
		for {
			resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", port))
			if err == nil {
				resp.Body.Close()
				break
			}
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				t.Fatalf("agent stand-in /healthz: %v", err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		cmd.Process.Signal(sig)
		cmd.Wait()
		want := map[syscall.Signal]int{syscall.SIGHUP: 129, syscall.SIGTERM: 0}[sig]
		if got := cmd.ProcessState.ExitCode(); got != want {
			t.Fatalf("after %v exit %d, want %d", sig, got, want)
		}
		_, err := os.Stat(hupFile)
		if (sig == syscall.SIGHUP) != (err == nil) {
			t.Fatalf("after %v hup file present=%v", sig, err == nil)
		}
	}
}

// TestBackendConfigReadsAsSensuBackend: the last of a key set twice counts,
// and a SENSU_BACKEND_* variable that is not empty overrides the file, as
// sensu-backend reads them.
func TestBackendConfigReadsAsSensuBackend(t *testing.T) {
	yml := filepath.Join(t.TempDir(), "backend.yml")
	if err := os.WriteFile(yml, []byte("cert-file: /old.pem\nkey-file: /k.pem\nagent-port: 9081\ncert-file: /new.pem\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SENSU_BACKEND_AGENT_PORT", "7081")
	t.Setenv("SENSU_BACKEND_KEY_FILE", "")
	cfg, err := loadBackendConfig(yml)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.CertFile != "/new.pem" || cfg.KeyFile != "/k.pem" || cfg.AgentPort != 7081 || cfg.APIListenAddress != "[::]:8080" {
		t.Fatalf("config %+v", cfg)
	}
}

// TestAgentConnectsAsAgentYMLSays: with -c the agent stand-in dials the
// backends agent.yml lists, over wss:// verified by trusted-ca-file, and
// /healthz says whether it is connected (503 while it is not).
func TestAgentConnectsAsAgentYMLSays(t *testing.T) {
	f := newFixture(t, true)
	f.start(t)
	dead := testpeer.FreePort(t)
	for _, c := range []struct {
		urls string
		want int
	}{
		{fmt.Sprintf("[wss://127.0.0.1:%d]", dead), http.StatusServiceUnavailable},
		{fmt.Sprintf("[wss://127.0.0.1:%d, wss://localhost:%d]", dead, f.agtPort), http.StatusOK},
	} {
		api := testpeer.FreePort(t)
		yml := filepath.Join(t.TempDir(), "agent.yml")
		os.WriteFile(yml, fmt.Appendf(nil, "name: agent-1\nbackend-url: %s\ntrusted-ca-file: %s\napi-port: %d\n", c.urls, f.set.CAFile, api), 0o644)
		ctx, cancel := context.WithCancel(context.Background())
		logs := &logbuf.Buffer{}
		done := make(chan error, 1)
		go func() { done <- runAgent(ctx, []string{"-c", yml, "--keepalive-interval", "50ms"}, logs) }()
		got := 0
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && got != c.want; time.Sleep(50 * time.Millisecond) {
			if resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", api)); err == nil {
				got = resp.StatusCode
				resp.Body.Close()
			}
		}
		if got != c.want {
			t.Errorf("backend-url %s: /healthz %d, want %d\n%s", c.urls, got, c.want, logs)
		}
		if c.want == http.StatusOK {
			time.Sleep(200 * time.Millisecond) // a few keepalives
			if !strings.Contains(logs.String(), `msg="agent connected"`) || strings.Contains(logs.String(), "keepalive failed") {
				t.Errorf("agent log:\n%s", logs)
			}
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent stand-in ended with %v", err)
		}
	}
}

// TestEmbeddedEtcdRunsFromBackendYML runs the built stand-in with --etcd
// on a one-member cluster from backend.yml's etcd-* keys: /health answers
// from etcd's own health once the member leads, and the stand-in ends
// when its etcd dies, as sensu-backend does.
func TestEmbeddedEtcdRunsFromBackendYML(t *testing.T) {
	etcd, err := exec.LookPath("etcd")
	testpeer.NeedPeer(t, err == nil, "etcd not on PATH (apt-get install etcd-server)")
	f := newFixture(t, false)
	client, peer := testpeer.FreePort(t), testpeer.FreePort(t)
	appendFile(t, f.cfg, fmt.Sprintf(`state-dir: %[1]s/state
etcd-name: backend-1
etcd-listen-client-urls: http://127.0.0.1:%[2]d
etcd-advertise-client-urls: http://127.0.0.1:%[2]d
etcd-listen-peer-urls: http://127.0.0.1:%[3]d
etcd-initial-advertise-peer-urls: http://127.0.0.1:%[3]d
etcd-initial-cluster: backend-1=http://127.0.0.1:%[3]d
etcd-initial-cluster-state: new
`, f.dir, client, peer))
	var out logbuf.Buffer
	cmd := exec.Command(standintest.Binary(t), "-c", f.cfg, "--etcd", etcd)
	cmd.Stderr = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	waitHealthy(t, f)
	resp, err := f.client().Get(f.url(f.apiPort, "/health"))
	if err != nil {
		t.Fatal(err)
	}
	var h struct{ ClusterHealth []clusterMember }
	json.NewDecoder(resp.Body).Decode(&h)
	resp.Body.Close()
	if len(h.ClusterHealth) != 1 || !h.ClusterHealth[0].Healthy {
		t.Errorf("/health with a healthy etcd: %+v", h)
	}
	etcdLog, _ := os.ReadFile(filepath.Join(f.dir, "state", "etcd.log"))
	if !strings.Contains(string(etcdLog), "--data-dir="+filepath.Join(f.dir, "state", "etcd")) {
		t.Errorf("etcd was not started with its data under state-dir/etcd:\n%.2000s", etcdLog)
	}

	children, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", cmd.Process.Pid))
	killed := false
	for _, c := range children {
		b, _ := os.ReadFile(c)
		for _, pid := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(pid); err == nil && syscall.Kill(n, syscall.SIGKILL) == nil {
				killed = true
			}
		}
	}
	if !killed {
		t.Fatalf("no etcd child of the stand-in found under /proc/%d", cmd.Process.Pid)
	}
	err = cmd.Wait()
	if err == nil || !strings.Contains(out.String(), "embedded etcd exited") {
		t.Errorf("stand-in after its etcd died: %v\n%s", err, out.String())
	}
}
