package main

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/internal/enrol"
	"github.com/sensu-tlsd/sensu-tlsd/internal/pki"
	"github.com/sensu-tlsd/sensu-tlsd/internal/testpeer"
)

// enrolSensuAPI stands in for the Sensu API's GET /auth: 200 for the
// users it knows with their password, 401 otherwise; it counts the calls
// per user.
type enrolSensuAPI struct {
	srv   *httptest.Server
	mu    sync.Mutex
	calls map[string]int
}

func newEnrolSensuAPI(t *testing.T, users map[string]string) *enrolSensuAPI {
	a := &enrolSensuAPI{calls: map[string]int{}}
	a.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, ok := r.BasicAuth()
		a.mu.Lock()
		a.calls[user]++
		a.mu.Unlock()
		if r.URL.Path != "/auth" || !ok || users[user] != pass || pass == "" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		io.WriteString(w, `{"access_token":"a","expires_at":0,"refresh_token":"r"}`)
	}))
	t.Cleanup(a.srv.Close)
	return a
}

func (a *enrolSensuAPI) callsOf(user string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.calls[user]
}

// enrolAgentNode writes an agent node: agent.yml with the identity, and a
// sensu-tlsd config whose certificate agent comes from the enrol-server
// at url, trusting the backends' CA (the one public file an operator
// hands out; no key is copied).
func enrolAgentNode(t *testing.T, url, backendCA, name, user, password string) (dir, cfg string) {
	t.Helper()
	dir = t.TempDir()
	e2eWriteFile(t, filepath.Join(dir, "agent.yml"), fmt.Sprintf("name: %s\nuser: %s\npassword: %q\nbackend-url: [wss://127.0.0.1:8081]\n", name, user, password))
	copyFile(t, backendCA, filepath.Join(dir, "backend-ca.pem"))
	cfg = filepath.Join(dir, "tlsd.yml")
	e2eWriteFile(t, cfg, fmt.Sprintf(`state-dir: %[1]s/state
metrics-address: 127.0.0.1:0
renewal:
  before: 20s
  jitter: 0s
  retry-min: 1s
  retry-max: 1s
sensu:
  agent-config: %[1]s/agent.yml
  agent-env-files: []
defaults:
  dir: %[1]s/tls
certificates:
  - name: agent
    profile: agent
    issuer:
      type: enrol
      enrol:
        urls: [%[2]s]
        ca-file: %[1]s/backend-ca.pem
`, dir, url))
	return dir, cfg
}

// TestEnrolment runs a backend's daemon with enrol-server in front of a
// stand-in Sensu API, and agent-node daemons that enrol with it.
func TestEnrolment(t *testing.T) {
	testpeer.NeedPeer(t, testpeer.HasProgram("openssl"), "openssl verifies the enrolled certificates")
	api := newEnrolSensuAPI(t, map[string]string{"agent": "P@ssw0rd!", "agent-db": "db-secret", "agent-dup": "dup-secret"})
	bdir := t.TempDir()
	e2eWriteFile(t, filepath.Join(bdir, "sensu-api-ca.pem"), string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: api.srv.Certificate().Raw})))
	port := testpeer.FreePort(t)
	url := fmt.Sprintf("https://127.0.0.1:%d", port)
	bcfg := daemonConfig(t, bdir, "24h", "33%", fmt.Sprintf(`enrol-server:
  listen: 127.0.0.1:%d
  certificate: backend-1
  sensu-api-url: %s
  sensu-api-ca-file: %s/sensu-api-ca.pem
  autosign: [web-*]
  lifetime: 40s
`, port, api.srv.URL, bdir))
	backend := daemonStart(t, bdir, bcfg)
	backend.waitLog(`enrol-server listening`, 30*time.Second)
	backend.waitLog(`certificate changed`, 30*time.Second)
	backendCA := filepath.Join(bdir, "ca", "ca.pem")

	// Autosign: web-1 enrols with agent.yml's credentials and installs.
	webDir, webCfg := enrolAgentNode(t, url, backendCA, "web-1", "agent", "P@ssw0rd!")
	web := daemonStart(t, webDir, webCfg)
	web.waitLog(`certificate changed`, 30*time.Second)
	certFile, keyFile := filepath.Join(webDir, "tls", "agent.pem"), filepath.Join(webDir, "tls", "agent-key.pem")
	daemonVerify(t, backendCA, certFile)
	leaf := enrolLeaf(t, certFile)
	if leaf.Subject.CommonName != "web-1" || len(leaf.URIs) != 1 || leaf.URIs[0].String() != "sensu://default/web-1" {
		t.Fatalf("web-1's certificate: CN %q URIs %v, want web-1 and sensu://default/web-1", leaf.Subject.CommonName, leaf.URIs)
	}
	for _, f := range []string{keyFile, filepath.Join(webDir, "state", "certs", "agent", "enrol-key.pem")} {
		if fi, err := os.Stat(f); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v, want a 0600 key made on the node", f, fi, err)
		}
	}
	if n := api.callsOf("agent"); n != 1 {
		t.Fatalf("web-1's enrolment checked its credentials %d times, want 1", n)
	}

	// Renewal: web-1 presents its certificate; the Sensu API sees no call.
	web.waitLog(`certificate changed.*reason=renew`, time.Minute)
	backend.waitLog(`path=/v1/renew .*agent=web-1`, 10*time.Second)
	if n := api.callsOf("agent"); n != 1 {
		t.Fatalf("web-1's renewal checked credentials (%d /auth calls, want still 1)", n)
	}
	if renewed := enrolLeaf(t, certFile); renewed.SerialNumber.Cmp(leaf.SerialNumber) == 0 {
		t.Fatal("the renewal installed the same certificate")
	}

	// Approval: db-1 matches no autosign glob and waits for an operator.
	dbDir, dbCfg := enrolAgentNode(t, url, backendCA, "db-1", "agent-db", "db-secret")
	db := daemonStart(t, dbDir, dbCfg)
	db.waitLog("renewal failed.*waiting for approval: db-1 is pending \\(db-1 matches no autosign pattern\\): run `sensu-tlsd agents approve db-1` on a backend", 30*time.Second)
	list := mustRun(t, bdir, nil, "agents", "list", "--config", bcfg)
	if !regexp.MustCompile(`(?m)^db-1\s+default\s+pending\s+sha256:[0-9a-f]{16}\s`).MatchString(list.stdout) {
		t.Fatalf("agents list does not show db-1 pending:\n%s", list.stdout)
	}
	mustRun(t, bdir, nil, "agents", "approve", "db-1", "--config", bcfg)
	db.waitLog(`certificate changed`, 30*time.Second)
	daemonVerify(t, backendCA, filepath.Join(dbDir, "tls", "agent.pem"))

	// A second key for the taken name web-1 waits.
	dupDir, dupCfg := enrolAgentNode(t, url, backendCA, "web-1", "agent-dup", "dup-secret")
	dup := daemonStart(t, dupDir, dupCfg)
	dup.waitLog(`renewal failed.*waiting for approval: web-1 is pending \(web-1 is bound to key [0-9a-f]{16}; this request has another key`, 30*time.Second)
	if _, err := os.Stat(filepath.Join(dupDir, "tls", "agent.pem")); err == nil {
		t.Fatal("a second key for web-1 got a certificate without approval")
	}

	// Wrong credentials are refused, with what to fix.
	badDir, badCfg := enrolAgentNode(t, url, backendCA, "web-2", "agent", "wrong")
	bad := daemonStart(t, badDir, badCfg)
	bad.waitLog(`renewal failed.*refused the request \(401 Unauthorized\): the Sensu API at https://127.0.0.1:\d+ refused the password of user \\"agent\\": check user and password in agent.yml`, 30*time.Second)

	var recs []enrol.Record
	if err := json.Unmarshal([]byte(mustRun(t, bdir, nil, "agents", "list", "--json", "--config", bcfg).stdout), &recs); err != nil {
		t.Fatal(err)
	}
	states := map[string]enrol.State{}
	for _, r := range recs {
		states[r.Name] = r.State
	}
	if states["db-1"] != enrol.Signed || states["web-2"] != "" {
		t.Errorf("agents list --json: %+v, want db-1 signed and no web-2 (refused before any decision)", states)
	}
	r := run(t, bdir, nil, "agents", "approve", "nobody", "--config", bcfg)
	if r.code == 0 || !strings.Contains(r.stderr, `no agent "nobody" has asked to enrol`) {
		t.Errorf("approve of an unknown agent: exit %d, %s", r.code, r.stderr)
	}

	// SIGHUP moves the enrol-server to another port and autosigns db-* too:
	// an agent enrols there at once, and the old port is closed.
	port2 := testpeer.FreePort(t)
	daemonConfig(t, bdir, "24h", "33%", fmt.Sprintf(`enrol-server:
  listen: 127.0.0.1:%d
  certificate: backend-1
  sensu-api-url: %s
  sensu-api-ca-file: %s/sensu-api-ca.pem
  autosign: [web-*, db-*]
  lifetime: 40s
`, port2, api.srv.URL, bdir))
	backend.signal(syscall.SIGHUP)
	backend.waitLog(fmt.Sprintf(`enrol-server listening.*address=127.0.0.1:%d`, port2), 30*time.Second)
	backend.waitLog(`configuration reloaded`, 30*time.Second)
	db2Dir, db2Cfg := enrolAgentNode(t, fmt.Sprintf("https://127.0.0.1:%d", port2), backendCA, "db-2", "agent-db", "db-secret")
	db2 := daemonStart(t, db2Dir, db2Cfg)
	db2.waitLog(`certificate changed`, 30*time.Second)
	if conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
		conn.Close()
		t.Errorf("the enrol-server still accepts on its old port %d after moving to %d", port, port2)
	}
}

func enrolLeaf(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	certs, err := pki.ReadCertificates(path)
	if err != nil {
		t.Fatal(err)
	}
	return certs[0]
}

// TestEnrolServerConfigValidate: `config validate` builds the enrol-server
// as run would, so a Sensu API CA that cannot be read is named before a start.
func TestEnrolServerConfigValidate(t *testing.T) {
	dir := t.TempDir()
	cfg := daemonConfig(t, dir, "24h", "33%", `enrol-server:
  listen: 127.0.0.1:0
  certificate: backend-1
  sensu-api-url: https://127.0.0.1:8080
  sensu-api-ca-file: `+dir+`/missing.pem
`)
	r := run(t, dir, nil, "config", "validate", cfg)
	if r.code == 0 || !strings.Contains(r.stderr, cfg+": enrol-server.sensu-api-ca-file: open "+dir+"/missing.pem: no such file or directory") {
		t.Fatalf("config validate: exit %d\n%s", r.code, r.stderr)
	}
}
