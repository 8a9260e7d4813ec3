package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/internal/testpeer"
)

// daemonBuildTools builds the named programs from tools/go.mod into a
// directory and returns it (for PATH).
func daemonBuildTools(t *testing.T, pkgs ...string) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	for _, pkg := range pkgs {
		build := exec.Command("go", "build", "-modfile="+filepath.Join(root, "tools/go.mod"), "-o", filepath.Join(bin, filepath.Base(pkg)), pkg)
		build.Dir = root
		out, err := build.CombinedOutput()
		testpeer.NeedPeer(t, err == nil, fmt.Sprintf("building %s from tools/go.mod: %v\n%s", pkg, err, out))
	}
	return bin
}

// TestDaemonExecIssuerWithCfssl renews through examples/exec-cfssl.sh with
// the real cfssl and cfssljson, then checks the set with openssl.
func TestDaemonExecIssuerWithCfssl(t *testing.T) {
	testpeer.NeedPeer(t, testpeer.HasProgram("openssl"), "openssl verifies the cfssl-issued set")
	bin := daemonBuildTools(t, "github.com/cloudflare/cfssl/cmd/cfssl", "github.com/cloudflare/cfssl/cmd/cfssljson")
	script, _ := filepath.Abs("../../examples/exec-cfssl.sh")
	dir := t.TempDir()
	caDir := filepath.Join(dir, "cfssl-ca")
	mustRun(t, dir, nil, "ca", "init", "--dir", caDir)
	// cfssl sets NotBefore to now, rounded to the minute, less 5 minutes,
	// and counts the lifetime from there: 6m is 30 to 90 more seconds.
	cfg := daemonConfig(t, dir, "6m", "40s", fmt.Sprintf(`    issuer:
      type: exec
      exec:
        command: [/bin/sh, %s, %s]
`, script, caDir))
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	d := daemonStart(t, dir, cfg)
	waitStatus(t, dir, cfg, "backend-1", 30*time.Second, "the first set installed", issued)
	d.waitMetric(renewals("backend-1", "renewal"), 1, 90*time.Second)
	tls := filepath.Join(dir, "tls")
	daemonVerify(t, filepath.Join(tls, "ca.pem"), filepath.Join(tls, "backend-1.pem"))
	out, err := exec.Command("openssl", "x509", "-noout", "-ext", "extendedKeyUsage,subjectAltName", "-in", filepath.Join(tls, "backend-1.pem")).CombinedOutput()
	if err != nil {
		t.Fatalf("openssl x509: %v\n%s", err, out)
	}
	for _, want := range []string{"TLS Web Server Authentication", "TLS Web Client Authentication", "DNS:localhost", "IP Address:127.0.0.1"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("cfssl-issued certificate lacks %q:\n%s", want, out)
		}
	}
}
