package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/sensu-tlsd/sensu-tlsd/internal/testpeer"
)

// proxyPKI is a CA and certificates made by the real openssl binary.
type proxyPKI struct {
	dir string
}

func proxyNewPKI(t *testing.T) *proxyPKI {
	t.Helper()
	testpeer.NeedPeer(t, testpeer.HasProgram("openssl"), "openssl is not installed (apt-get install -y openssl)")
	p := &proxyPKI{dir: t.TempDir()}
	p.openssl(t, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
		"-keyout", p.path("ca-key.pem"), "-out", p.path("ca.pem"), "-subj", "/CN=proxy test CA", "-days", "2")
	return p
}

func (p *proxyPKI) path(name string) string { return filepath.Join(p.dir, name) }

func (p *proxyPKI) openssl(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command("openssl", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// issue makes NAME.pem and NAME-key.pem signed by the CA; keyType is
// "ec" or "rsa". SANs are for localhost and 127.0.0.1.
func (p *proxyPKI) issue(t *testing.T, name, cn, keyType string) (certFile, keyFile string) {
	t.Helper()
	newkey := []string{"-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"}
	if keyType == "rsa" {
		newkey = []string{"-newkey", "rsa:2048"}
	}
	certFile, keyFile = p.path(name+".pem"), p.path(name+"-key.pem")
	csr, ext := p.path(name+".csr"), p.path(name+".ext")
	os.WriteFile(ext, []byte("subjectAltName=DNS:localhost,IP:127.0.0.1,URI:spiffe://sensu/"+cn+"\nextendedKeyUsage=serverAuth,clientAuth\n"), 0o644)
	p.openssl(t, append(append([]string{"req"}, newkey...), "-nodes", "-keyout", keyFile, "-out", csr, "-subj", "/CN="+cn)...)
	p.openssl(t, "x509", "-req", "-in", csr, "-CA", p.path("ca.pem"), "-CAkey", p.path("ca-key.pem"),
		"-CAcreateserial", "-out", certFile, "-days", "1", "-extfile", ext)
	return certFile, keyFile
}

func (p *proxyPKI) pool(t *testing.T) *x509.CertPool {
	t.Helper()
	pem, err := os.ReadFile(p.path("ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return pool
}

func (p *proxyPKI) clientConfig(t *testing.T) *tls.Config {
	return &tls.Config{RootCAs: p.pool(t), ServerName: "localhost"}
}

// proxyProc is a running `sensu-tlsd proxy`.
type proxyProc struct {
	cmd         *exec.Cmd
	addr        string
	metricsAddr string
	logFile     string // where stderr goes, when not to stderr below
	mu          sync.Mutex
	stderr      bytes.Buffer
	exited      chan struct{}
	exitErr     error
}

type proxySyncWriter struct {
	p *proxyProc
}

func (w proxySyncWriter) Write(b []byte) (int, error) {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	return w.p.stderr.Write(b)
}

var proxyListeningRE = regexp.MustCompile(`^listening on (\S+) `)
var proxyMetricsRE = regexp.MustCompile(`^metrics on http://(\S+)/metrics`)

// proxyStart runs the built binary's proxy command with --listen
// 127.0.0.1:0 and --metrics-address 127.0.0.1:0 and waits until it
// listens. It is stopped (SIGTERM) at cleanup.
func proxyStart(t *testing.T, args ...string) *proxyProc {
	t.Helper()
	return proxyStartLogging(t, "", args...)
}

// proxyStartLogging is proxyStart with the proxy's stderr opened on
// logFile, when not "", so the binary itself writes there.
func proxyStartLogging(t *testing.T, logFile string, args ...string) *proxyProc {
	t.Helper()
	args = append([]string{"proxy", "--listen", "127.0.0.1:0", "--metrics-address", "127.0.0.1:0"}, args...)
	p := &proxyProc{cmd: exec.Command(binPath, args...), exited: make(chan struct{}), logFile: logFile}
	p.cmd.Env = cleanEnv()
	p.cmd.Stderr = proxySyncWriter{p}
	if logFile != "" {
		f, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close() // the child keeps its own descriptor
		p.cmd.Stderr = f
	}
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(out)
	found := make(chan struct{})
	go func() {
		for lines.Scan() {
			if m := proxyMetricsRE.FindStringSubmatch(lines.Text()); m != nil {
				p.metricsAddr = m[1]
			}
			if m := proxyListeningRE.FindStringSubmatch(lines.Text()); m != nil {
				p.addr = m[1]
				close(found)
			}
		}
		io.Copy(io.Discard, out)
	}()
	go func() { p.exitErr = p.cmd.Wait(); close(p.exited) }()
	select {
	case <-found:
	case <-p.exited:
		t.Fatalf("sensu-tlsd %v exited before listening: %v\n%s", args, p.exitErr, p.stderrText())
	case <-time.After(20 * time.Second):
		p.cmd.Process.Kill()
		t.Fatalf("sensu-tlsd %v did not report listening\n%s", args, p.stderrText())
	}
	t.Cleanup(func() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(15 * time.Second):
			p.cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("proxy stderr:\n%s", p.stderrText())
		}
	})
	return p
}

func (p *proxyProc) stderrText() string {
	if p.logFile != "" {
		b, _ := os.ReadFile(p.logFile)
		return string(b)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

// metric returns the value of the series whose line starts with series
// (name and labels as exposed), or 0 when it is absent.
func (p *proxyProc) metric(t *testing.T, series string) float64 {
	t.Helper()
	body := proxyGet(t, "http://"+p.metricsAddr+"/metrics")
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, series+" ") {
			v, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimPrefix(line, series)), 64)
			if err != nil {
				t.Fatalf("metric line %q: %v", line, err)
			}
			return v
		}
	}
	return 0
}

// waitMetric waits up to 5s for series to reach want: the proxy counts a
// failed handshake just after the client has seen it fail.
func (p *proxyProc) waitMetric(t *testing.T, series string, want float64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		v := p.metric(t, series)
		if v == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %v, want %v", series, v, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func proxyGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// proxyWSBackend is a websocket server standing in for sensu-backend's
// agent port: it refuses upgrades without the Sensu agent headers and
// echoes every message prefixed with the agent name. With tlsCert it
// serves wss.
func proxyWSBackend(t *testing.T, tlsCert *tls.Certificate) string {
	t.Helper()
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name, ns := r.Header.Get("Sensu-AgentName"), r.Header.Get("Sensu-Namespace")
		if name == "" || ns == "" || r.Header.Get("Authorization") == "" {
			http.Error(w, "missing Sensu agent headers", http.StatusBadRequest)
			return
		}
		w.Header().Set("Backend-ID", "test-backend")
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			typ, msg, err := c.Read(r.Context())
			if err != nil {
				return
			}
			if err := c.Write(r.Context(), typ, append([]byte(name+"/"+ns+": "), msg...)); err != nil {
				return
			}
		}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: handler}
	if tlsCert != nil {
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{*tlsCert}})
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// proxyAgent is a websocket client that speaks like a Sensu agent.
type proxyAgent struct {
	name string
	conn *websocket.Conn
}

func proxyDialAgent(t *testing.T, url, name string, tlsConf *tls.Config) (*proxyAgent, error) {
	t.Helper()
	c, resp, err := dialAgentSession(url, name, tlsConf)
	if err != nil {
		return nil, err
	}
	if resp.Header.Get("Backend-ID") == "" {
		return nil, fmt.Errorf("no Backend-ID in the upgrade response")
	}
	return &proxyAgent{name: name, conn: c}, nil
}

// echo sends msg and checks the backend's answer.
func (a *proxyAgent) echo(msg string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.conn.Write(ctx, websocket.MessageBinary, []byte(msg)); err != nil {
		return err
	}
	_, got, err := a.conn.Read(ctx)
	if err != nil {
		return err
	}
	if want := a.name + "/default: " + msg; string(got) != want {
		return fmt.Errorf("backend answered %q, want %q", got, want)
	}
	return nil
}

func (a *proxyAgent) close() { a.conn.Close(websocket.StatusNormalClosure, "") }
