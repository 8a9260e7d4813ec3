package etcdtest

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/config/sensu"
	"github.com/sensu-tlsd/sensu-tlsd/internal/pki"
	"github.com/sensu-tlsd/sensu-tlsd/internal/testpeer"
	"github.com/sensu-tlsd/sensu-tlsd/rotate/ca"
)

// ElectionTimeout is the etcd-election-timeout the generated members use;
// HeartbeatInterval is etcd-heartbeat-interval. Both are 2.5 times etcd's
// defaults (1 s, 100 ms): a member starved of CPU by -race builds on two
// shared cores then calls no election of its own, so the tests see the
// cutover's stalls, not the scheduler's.
const (
	ElectionTimeout   = 2500 * time.Millisecond
	HeartbeatInterval = 250 * time.Millisecond
)

// Cluster is a running etcd cluster of real members.
type Cluster struct {
	Dir     string
	Members []*Member
	// Backend is the certificate every member serves etcd clients with and
	// the backend's etcd client certificate (profile backend); Peer is
	// the peer certificate (profile etcd-peer). Both cover localhost and
	// 127.0.0.1.
	Backend, Peer sensu.CertPaths
	t             testing.TB
	used          map[int]bool
}

// Member is one etcd member and the backend.yml it runs from.
type Member struct {
	Name       string
	BackendYML string
	DataDir    string
	Log        string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// Binary is the etcd executable the members run.
func Binary() (string, bool) {
	p, err := exec.LookPath("etcd")
	return p, err == nil
}

// Start writes the cluster (Write), starts every member and waits until
// each reports healthy. Every member is stopped when the test ends.
func Start(t testing.TB, n int) *Cluster {
	t.Helper()
	c := Write(t, n)
	t.Cleanup(c.stopAll)
	for _, m := range c.Members {
		c.StartMember(m)
	}
	for _, m := range c.Members {
		c.WaitHealthy(m, time.Minute)
	}
	return c
}

// Write writes n backend.yml files with plaintext etcd peers and clients
// on free loopback ports and issues the certificates a migration points
// them at, but starts no member: for a test whose members run as
// something else's embedded etcd (the stand-in backend under systemd). It
// skips the test loudly (or fails it under SENSU_TLSD_REQUIRE_PEERS=1)
// when etcd is not installed.
func Write(t testing.TB, n int) *Cluster {
	t.Helper()
	_, ok := Binary()
	testpeer.NeedPeer(t, ok, "etcd not on PATH (apt-get install etcd-server)")
	dir := t.TempDir()
	c := &Cluster{Dir: dir, t: t, used: map[int]bool{}}
	c.issueCerts()
	type ports struct{ client, peer int }
	var ps []ports
	var initial []string
	for i := 1; i <= n; i++ {
		p := ports{c.freePort(), c.freePort()}
		ps = append(ps, p)
		initial = append(initial, fmt.Sprintf("backend-%d=http://127.0.0.1:%d", i, p.peer))
	}
	for i, p := range ps {
		name := fmt.Sprintf("backend-%d", i+1)
		m := &Member{
			Name:       name,
			BackendYML: filepath.Join(dir, name+".yml"),
			DataDir:    filepath.Join(dir, name, "etcd"),
			Log:        filepath.Join(dir, name+".log"),
		}
		writeFile(t, m.BackendYML, fmt.Sprintf(`---
# Sensu backend %[1]d of %[2]d (see the clustering guide), on loopback
state-dir: %[3]q

## etcd cluster
etcd-name: %[4]q
etcd-listen-client-urls: "http://127.0.0.1:%[5]d"
etcd-advertise-client-urls: "http://127.0.0.1:%[5]d"
etcd-listen-peer-urls: "http://127.0.0.1:%[6]d"
etcd-initial-advertise-peer-urls: "http://127.0.0.1:%[6]d"
etcd-initial-cluster: %[7]q
etcd-initial-cluster-state: "new"
etcd-initial-cluster-token: "sensu"
etcd-election-timeout: %[8]d
etcd-heartbeat-interval: %[9]d

## api
api-listen-address: "127.0.0.1:%[10]d"
api-url: "http://127.0.0.1:%[10]d"
agent-host: "127.0.0.1"
agent-port: %[11]d
`, i+1, n, filepath.Join(dir, name), name, p.client, p.peer, strings.Join(initial, ","),
			ElectionTimeout.Milliseconds(), HeartbeatInterval.Milliseconds(), c.freePort(), c.freePort()))
		c.Members = append(c.Members, m)
	}
	return c
}

// freePort is a free loopback port below the kernel's ephemeral range
// (32768 up), so no outgoing connection, of this test or another process,
// takes it between its choice and the member binding it; the migrate
// bridge can still move it to loopback (port + 10000).
func (c *Cluster) freePort() int {
	for range 1000 {
		p := 20000 + rand.IntN(12000)
		if c.used[p] {
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue
		}
		l.Close()
		c.used[p] = true
		return p
	}
	c.t.Fatal("no free loopback port between 20000 and 32000")
	return 0
}

func (c *Cluster) issueCerts() {
	t := c.t
	tlsDir := filepath.Join(c.Dir, "tls")
	if err := os.MkdirAll(tlsDir, 0o755); err != nil {
		t.Fatal(err)
	}
	authority, err := ca.Init(tlsDir, ca.InitOptions{CommonName: "etcdtest CA", Lifetime: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	issue := func(name string, profile pki.Profile) sensu.CertPaths {
		is, err := authority.Issue(ca.Request{Name: name, Profile: profile, Hosts: []string{"localhost", "127.0.0.1"}, Lifetime: 12 * time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		p, err := ca.WriteFiles(tlsDir, name, is)
		if err != nil {
			t.Fatal(err)
		}
		return sensu.CertPaths{CertFile: p.Cert, KeyFile: p.Key, CAFile: p.CA}
	}
	c.Backend = issue("backend", pki.Backend)
	c.Peer = issue("peer", pki.EtcdPeer)
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Flags are the etcd flags the member's backend.yml gives now: the
// member runs as sensu-backend's embedded etcd would.
func (m *Member) Flags(t testing.TB) []string {
	t.Helper()
	return sensu.EmbeddedEtcdFlags(m.document(t).Get)
}

func (m *Member) document(t testing.TB) *sensu.Document {
	t.Helper()
	src, err := os.ReadFile(m.BackendYML)
	if err != nil {
		t.Fatal(err)
	}
	d, err := sensu.Parse(m.BackendYML, src)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// ClientURL is the member's advertised client URL in its backend.yml now.
func (m *Member) ClientURL(t testing.TB) string {
	t.Helper()
	v, ok := m.document(t).Get("etcd-advertise-client-urls")
	if !ok {
		t.Fatalf("%s: no etcd-advertise-client-urls", m.BackendYML)
	}
	return sensu.SensuItems(v)[0]
}

// StartMember starts the member's etcd from its backend.yml as it is now;
// the member's log is appended to Log.
func (c *Cluster) StartMember(m *Member) {
	t := c.t
	t.Helper()
	bin, _ := Binary()
	logf, err := os.OpenFile(m.Log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(logf, "=== start %s\n", strings.Join(m.Flags(t), " "))
	cmd := exec.Command(bin, m.Flags(t)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		logf.Close()
		close(done)
	}()
	m.mu.Lock()
	m.cmd, m.done = cmd, done
	m.mu.Unlock()
}

// StopMember stops the member's etcd (SIGTERM, then SIGKILL after 10s)
// and waits for it to exit.
func (c *Cluster) StopMember(m *Member) {
	m.mu.Lock()
	cmd, done := m.cmd, m.done
	m.cmd = nil
	m.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

// RestartMember stops the member and starts it from its backend.yml again.
func (c *Cluster) RestartMember(m *Member) {
	c.t.Helper()
	c.StopMember(m)
	c.StartMember(m)
}

func (c *Cluster) stopAll() {
	for _, m := range c.Members {
		c.StopMember(m)
	}
	if c.t.Failed() {
		for _, m := range c.Members {
			b, _ := os.ReadFile(m.Log)
			c.t.Logf("%s log (last 4 KiB):\n%s", m.Name, tail(b, 4096))
		}
	}
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// ClientTLS is a client configuration trusting the cluster's CA with the
// backend certificate as the etcd client certificate.
func (c *Cluster) ClientTLS() *tls.Config {
	pair, err := tls.LoadX509KeyPair(c.Backend.CertFile, c.Backend.KeyFile)
	if err != nil {
		c.t.Fatal(err)
	}
	pem, err := os.ReadFile(c.Backend.CAFile)
	if err != nil {
		c.t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
}

// Health is the member's answer on GET /health of its client URL.
func (c *Cluster) Health(m *Member) (string, error) {
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: c.ClientTLS()}}
	resp, err := hc.Get(m.ClientURL(c.t) + "/health")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// WaitHealthy waits until the member reports "health":"true" on /health.
func (c *Cluster) WaitHealthy(m *Member, within time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(within)
	for {
		body, err := c.Health(m)
		if err == nil && strings.Contains(body, `"health":"true"`) {
			return
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(m.Log)
			c.t.Fatalf("etcd member %s never became healthy: %v %s\nlog:\n%s", m.Name, err, body, tail(log, 4096))
		}
		time.Sleep(100 * time.Millisecond)
	}
}
