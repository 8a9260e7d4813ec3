package main

import (
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/internal/testpeer"
)

// enrolClusterBackend writes one backend of a cluster: its backend.yml
// reaching the cluster's etcd over mTLS with its own certificate (as
// sensu-backend does), and a sensu-tlsd config whose enrol-server keeps
// its records in that etcd.
func enrolClusterBackend(t *testing.T, dir string, etcdPort, enrolPort int, apiURL, apiCA string) string {
	t.Helper()
	e2eWriteFile(t, filepath.Join(dir, "backend.yml"), fmt.Sprintf(`etcd-advertise-client-urls: "https://127.0.0.1:%d"
etcd-cert-file: %[2]s/tls/backend-1.pem
etcd-key-file: %[2]s/tls/backend-1-key.pem
etcd-trusted-ca-file: %[2]s/ca/ca.pem
`, etcdPort, dir))
	return daemonConfig(t, dir, "24h", "33%", fmt.Sprintf(`sensu:
  backend-config: %s/backend.yml
  backend-env-files: []
enrol-server:
  listen: 127.0.0.1:%d
  certificate: backend-1
  sensu-api-url: %s
  sensu-api-ca-file: %s
  autosign: [web-*]
  store: etcd
`, dir, enrolPort, apiURL, apiCA))
}

// TestEnrolmentClusterAnswersAlike runs two backends whose enrol-servers
// share the cluster's etcd (a real member, mTLS from backend.yml): a name
// bound through one member is bound on the other, and an approval given
// on one is honoured by the other.
func TestEnrolmentClusterAnswersAlike(t *testing.T) {
	testpeer.NeedPeer(t, testpeer.HasProgram("etcd"), "etcd not on PATH (apt-get install etcd-server)")
	api := newEnrolSensuAPI(t, map[string]string{"agent": "P@ssw0rd!"})
	root := t.TempDir()
	apiCA := filepath.Join(root, "sensu-api-ca.pem")
	e2eWriteFile(t, apiCA, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: api.srv.Certificate().Raw})))
	etcdPort, peerPort := testpeer.FreePort(t), testpeer.FreePort(t)
	dirA, dirB := filepath.Join(root, "a"), filepath.Join(root, "b")
	portA, portB := testpeer.FreePort(t), testpeer.FreePort(t)
	os.MkdirAll(dirA, 0o755)
	os.MkdirAll(dirB, 0o755)
	cfgA := enrolClusterBackend(t, dirA, etcdPort, portA, api.srv.URL, apiCA)
	cfgB := enrolClusterBackend(t, dirB, etcdPort, portB, api.srv.URL, apiCA)
	// One CA on every backend: its key is copied between backends, never to agents.
	mustRun(t, dirA, nil, "--config", cfgA, "ca", "init")
	os.MkdirAll(filepath.Join(dirB, "ca"), 0o700)
	copyFile(t, filepath.Join(dirA, "ca", "ca.pem"), filepath.Join(dirB, "ca", "ca.pem"))
	copyFile(t, filepath.Join(dirA, "ca", "ca-key.pem"), filepath.Join(dirB, "ca", "ca-key.pem"))
	mustRun(t, dirA, nil, "--config", cfgA, "issue", "--all")
	mustRun(t, dirB, nil, "--config", cfgB, "issue", "--all")

	client, peer := fmt.Sprintf("https://127.0.0.1:%d", etcdPort), fmt.Sprintf("http://127.0.0.1:%d", peerPort)
	etcd := exec.Command("etcd", "--name=default", "--data-dir="+filepath.Join(root, "etcd"),
		"--listen-client-urls="+client, "--advertise-client-urls="+client,
		"--listen-peer-urls="+peer, "--initial-advertise-peer-urls="+peer, "--initial-cluster=default="+peer,
		"--cert-file="+filepath.Join(dirA, "tls", "backend-1.pem"), "--key-file="+filepath.Join(dirA, "tls", "backend-1-key.pem"),
		"--trusted-ca-file="+filepath.Join(dirA, "ca", "ca.pem"), "--client-cert-auth=true")
	logf, err := os.Create(filepath.Join(root, "etcd.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	etcd.Stdout, etcd.Stderr = logf, logf
	if err := etcd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		etcd.Process.Signal(syscall.SIGTERM)
		etcd.Wait()
	})
	// Both members list the (empty) store once etcd answers them.
	for _, b := range []struct{ dir, cfg string }{{dirA, cfgA}, {dirB, cfgB}} {
		deadline := time.Now().Add(30 * time.Second)
		for r := run(t, b.dir, nil, "agents", "list", "--config", b.cfg); r.code != 0; r = run(t, b.dir, nil, "agents", "list", "--config", b.cfg) {
			if time.Now().After(deadline) {
				log, _ := os.ReadFile(logf.Name())
				t.Fatalf("agents list against etcd: %s\netcd log:\n%s", r.stderr, log)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	a, b := daemonStart(t, dirA, cfgA), daemonStart(t, dirB, cfgB)
	a.waitLog(`enrol-server listening.*store=etcd`, 30*time.Second)
	b.waitLog(`enrol-server listening.*store=etcd`, 30*time.Second)
	urlA, urlB := fmt.Sprintf("https://127.0.0.1:%d", portA), fmt.Sprintf("https://127.0.0.1:%d", portB)
	backendCA := filepath.Join(dirA, "ca", "ca.pem")

	// web-1 enrols through member A.
	webDir, webCfg := enrolAgentNode(t, urlA, backendCA, "web-1", "agent", "P@ssw0rd!")
	daemonStart(t, webDir, webCfg).waitLog(`certificate changed`, 30*time.Second)

	// Another key for web-1 through member B waits: B sees A's binding.
	dupDir, dupCfg := enrolAgentNode(t, urlB, backendCA, "web-1", "agent", "P@ssw0rd!")
	dup := daemonStart(t, dupDir, dupCfg)
	dup.waitLog(`renewal failed.*waiting for approval: web-1 is pending \(web-1 is bound to key`, 30*time.Second)
	b.waitLog(`path=/v1/enrol agent=web-1`, 10*time.Second)
	list := mustRun(t, dirB, nil, "agents", "list", "--config", cfgB)
	if !regexp.MustCompile(`(?m)^web-1\s+default\s+(pending|signed)\s`).MatchString(list.stdout) {
		t.Fatalf("member B does not list web-1:\n%s", list.stdout)
	}

	// Approved on A, the waiting key is signed by B.
	mustRun(t, dirA, nil, "agents", "approve", "web-1", "--config", cfgA)
	dup.waitLog(`certificate changed`, 30*time.Second)
	b.waitLog(`enrolment: signed web-1 .*path=/v1/enrol`, 10*time.Second)
	daemonVerify(t, backendCA, filepath.Join(dupDir, "tls", "agent.pem"))
}
