package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sensu-tlsd/sensu-tlsd/config/sensu"
)

// Without --user, lint checks readability for the account sensu; on a
// machine without it the check cannot be made, and lint says so instead of
// printing "clean".
func TestSensuconfLintSaysWhenReadabilityIsNotChecked(t *testing.T) {
	dir := t.TempDir()
	ca, _ := lintOpenSSLCert(t, dir, "ca", "DNS:ca", "serverAuth")
	agent := lintWrite(t, filepath.Join(dir, "agent.yml"), "backend-url:\n  - wss://127.0.0.1:8081\ntrusted-ca-file: "+ca+"\n")
	r := run(t, dir, nil, "lint", agent)
	if sensu.AccountExists("sensu") {
		// The check ran for the real account: a world-readable CA passes.
		if r.code != 0 || strings.Contains(r.stdout, "(readability)") {
			t.Errorf("with an account sensu: exit %d\n%s", r.code, r.stdout)
		}
		return
	}
	want := agent + `:3: warning: (readability): not checked whether sensu-agent can read trusted-ca-file: there is no account "sensu" on this machine (fix: pass --user with the account sensu-agent runs as)`
	if r.code != 1 || !strings.Contains(r.stdout, want) || strings.Contains(r.stdout, "clean") {
		t.Errorf("exit %d, want 1 and %q in\n%s", r.code, want, r.stdout)
	}
	if r := run(t, dir, nil, "lint", "--user", "root", agent); r.code != 0 || !strings.Contains(r.stdout, "1 file(s) clean") {
		t.Errorf("--user root: exit %d\n%s", r.code, r.stdout)
	}
}

// Sensu reads YAML 1.1: a plain yes is true.
func TestSensuconfLintYAML11Booleans(t *testing.T) {
	dir := t.TempDir()
	for _, v := range []string{"yes", "on", "y"} {
		agent := lintWrite(t, filepath.Join(dir, "agent.yml"), "backend-url: [ws://127.0.0.1:8081]\ninsecure-skip-tls-verify: "+v+"\n")
		if r := run(t, dir, nil, "lint", "--user", "root", agent); r.code != 2 || !strings.Contains(r.stdout, agent+":2: error: insecure-skip-tls-verify: certificate verification is off") {
			t.Errorf("insecure-skip-tls-verify: %s: exit %d\n%s", v, r.code, r.stdout)
		}
	}
}

// Environment files are linted with their own rules: lists separated by
// spaces, values that are strings, SENSU_* names.
func TestSensuconfLintEnvFiles(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "default"), 0o755); err != nil {
		t.Fatal(err)
	}
	agentEnv := lintWrite(t, filepath.Join(dir, "default", "sensu-agent"), "# packaged\nSENSU_BACKEND_URL=\"ws://10.0.0.1:8081,ws://10.0.0.2:8081\"\nSENSU_NAMESPACE=default\n")
	r := run(t, dir, nil, "lint", "--user", "root", agentEnv)
	want := agentEnv + `:2: error: SENSU_BACKEND_URL: "ws://10.0.0.1:8081,ws://10.0.0.2:8081" joins URLs with commas; Sensu reads it as a single URL, which nothing answers (fix: separate the URLs with spaces: SENSU_BACKEND_URL="ws://10.0.0.1:8081 ws://10.0.0.2:8081")`
	if r.code != 2 || !strings.Contains(r.stdout, want) {
		t.Errorf("exit %d, want %q in\n%s%s", r.code, want, r.stdout, r.stderr)
	}
	good := lintWrite(t, filepath.Join(dir, "default", "sensu-backend"), "SENSU_BACKEND_ETCD_LISTEN_CLIENT_URLS=\"http://10.0.0.1:2379 http://127.0.0.1:2379\"\nSENSU_BACKEND_LOG_LEVEL=info\n")
	if r := run(t, dir, nil, "lint", "--user", "root", good); r.code != 0 || !strings.Contains(r.stdout, "1 file(s) clean") {
		t.Errorf("a clean env file: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	ambiguous := lintWrite(t, filepath.Join(dir, "env"), "FOO=1\n")
	if r := run(t, dir, nil, "lint", ambiguous); r.code != 3 || !strings.Contains(r.stderr, "pass --role backend or --role agent") {
		t.Errorf("an env file of no role: exit %d %s", r.code, r.stderr)
	}
}
