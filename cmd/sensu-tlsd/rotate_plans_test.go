package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestConfigValidateReportsEveryBadCertificate: two certificates that
// cannot be managed here are both reported, each with its fix.
func TestConfigValidateReportsEveryBadCertificate(t *testing.T) {
	_, cfg := cliConfig(t, `  - {name: api, profile: server, hosts: [api], owner: no-such-user-here}
  - name: vault
    profile: server
    hosts: [vault]
    trusted-ca: /nonexistent/ca.pem
    ca-file: /nonexistent/vault-ca.pem
    issuer: {type: exec, exec: {command: [/bin/true]}}
`)
	r := run(t, "", nil, "config", "validate", cfg)
	for _, want := range []string{
		cfg + `: certificates[4] (api): install: owner "no-such-user-here": user: unknown user no-such-user-here: create the user or fix the owner key`,
		cfg + `: certificates[5] (vault): trusted-ca: /nonexistent/ca.pem: file does not exist: create it with the CA certificates candidates must chain to, or remove trusted-ca`,
	} {
		if r.code == 0 || !strings.Contains(r.stderr, want) {
			t.Errorf("config validate: exit %d, want %q in:\n%s", r.code, want, r.stderr)
		}
	}
}

// TestIssueAllLeavesTheCAItsOwnCAFile: with the certificates beside the
// local CA (cfssljson's layout, ca-file is the CA's ca.pem), the installed
// certificates are links into their generations and ca.pem stays the CA's
// regular file.
func TestIssueAllLeavesTheCAItsOwnCAFile(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "tlsd.yml")
	writeTestFile(t, cfg, `state-dir: `+dir+`/state
metrics-address: ""
ca: {dir: `+dir+`/pki, create: true}
defaults: {dir: `+dir+`/pki}
certificates:
  - {name: backend-1, profile: backend, hosts: [backend-1]}
`)
	mustRun(t, "", nil, "--config", cfg, "issue", "--all")
	caFile := filepath.Join(dir, "pki", "ca.pem")
	if fi, err := os.Lstat(caFile); err != nil || !fi.Mode().IsRegular() {
		t.Fatalf("%s after issue --all: %v %v, want the CA's regular file", caFile, fi, err)
	}
	if fi, err := os.Lstat(filepath.Join(dir, "pki", "backend-1.pem")); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("backend-1.pem after issue --all: %v %v, want a link into its generation", fi, err)
	}
	if out := opensslOut(t, "verify", "-CAfile", caFile, filepath.Join(dir, "pki", "backend-1.pem")); !strings.Contains(out, ": OK") {
		t.Fatalf("openssl verify: %s", out)
	}
}
