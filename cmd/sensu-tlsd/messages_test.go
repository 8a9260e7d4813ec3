package main

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/internal/testpeer"
)

// TestConfigValidateReportsEveryProblem: unknown keys and bad values are
// all reported, each with its file and line, not only the first.
func TestConfigValidateReportsEveryProblem(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "tlsd.yml")
	writeTestFile(t, cfg, `statedir: /x
renewal:
  befor: 10%
  jitter: soon
certificates:
  - {name: a, profile: server, cert_file: /x.pem}
`)
	r := run(t, dir, nil, "config", "validate", cfg)
	if r.code == 0 {
		t.Fatalf("a config with four problems validated:\n%s", r.stdout)
	}
	for _, want := range []string{
		cfg + `:1: unknown key "statedir": did you mean "state-dir"?`,
		cfg + `:3: unknown key "renewal.befor": did you mean "before"?`,
		cfg + `:4: renewal.jitter: "soon" is not a duration`,
		cfg + `:6: unknown key "certificates[0].cert_file": did you mean "cert-file"?`,
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("config validate does not report %q:\n%s", want, r.stderr)
		}
	}
}

// TestConfigKeysMarkdownIsTheReference: `config keys --markdown` prints
// docs/config.md as committed, and `config keys` points at it.
func TestConfigKeysMarkdownIsTheReference(t *testing.T) {
	want, err := os.ReadFile("../../docs/config.md")
	if err != nil {
		t.Fatal(err)
	}
	if r := mustRun(t, "", nil, "config", "keys", "--markdown"); r.stdout != string(want) {
		t.Fatal("sensu-tlsd config keys --markdown differs from docs/config.md: regenerate it with go test ./config -run TestReferenceIsCurrent -update")
	}
	_, cfg := cliConfig(t, "")
	if r := mustRun(t, "", nil, "--config", cfg, "config", "keys"); !strings.Contains(r.stdout, "config keys --markdown (docs/config.md)") {
		t.Fatalf("config keys does not say where the keys of each list entry are:\n%s", r.stdout)
	}
}

// TestIssueAllProducesEveryIssuerOrSaysWhichNot: issue --all creates the
// CA (and says so), issues local-ca and exec certificates (through
// examples/exec-cfssl.sh and the real cfssl, with the hosts, profile and
// key type each asks for), validates the files of issuer files, and exits
// non-zero naming each certificate it could not produce.
func TestIssueAllProducesEveryIssuerOrSaysWhichNot(t *testing.T) {
	testpeer.NeedPeer(t, testpeer.HasProgram("openssl"), "openssl reads the cfssl-issued certificates")
	bin := daemonBuildTools(t, "github.com/cloudflare/cfssl/cmd/cfssl", "github.com/cloudflare/cfssl/cmd/cfssljson")
	script, _ := filepath.Abs("../../examples/exec-cfssl.sh")
	dir := t.TempDir()
	cfsslCA := filepath.Join(dir, "cfssl-ca")
	mustRun(t, dir, nil, "ca", "init", "--dir", cfsslCA)
	exec := fmt.Sprintf("{type: exec, exec: {command: [/bin/sh, %s, %s]}}", script, cfsslCA)
	cfg := filepath.Join(dir, "tlsd.yml")
	writeTestFile(t, cfg, fmt.Sprintf(`state-dir: %[1]s/state
metrics-address: ""
ca: {dir: %[1]s/ca, create: true}
defaults: {dir: %[1]s/tls}
certificates:
  - {name: backend-1, profile: backend, hosts: [backend-1, 127.0.0.1]}
  - {name: api, profile: backend, hosts: [localhost, 127.0.0.1], key-type: rsa-2048, ca-file: %[1]s/tls/cfssl-ca.pem, issuer: %[2]s}
  - {name: agent-1, profile: agent, key-type: ecdsa-p384, ca-file: %[1]s/tls/cfssl-ca.pem, issuer: %[2]s}
  - name: followed
    profile: server
    hosts: [localhost]
    cert-file: %[1]s/other/followed.pem
    key-file: %[1]s/other/followed-key.pem
    ca-file: %[1]s/other/ca.pem
    issuer: files
`, dir, exec))
	path := []string{"PATH=" + bin + string(os.PathListSeparator) + os.Getenv("PATH")}

	r := run(t, dir, path, "--config", cfg, "issue", "--all")
	if r.code == 0 {
		t.Fatalf("issue --all exited 0 although the files of certificate followed do not exist:\n%s%s", r.stdout, r.stderr)
	}
	for _, want := range []string{"issued backend-1 (issuer local-ca", "issued api (issuer exec", "issued agent-1 (issuer exec"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("issue --all did not report %q:\n%s\n%s", want, r.stdout, r.stderr)
		}
	}
	for _, want := range []string{"certificate followed (issuer files): not produced", "1 of 4 certificates were not produced",
		"created a new local CA (ca.create is true)"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("issue --all did not say %q:\n%s", want, r.stderr)
		}
	}
	tls := filepath.Join(dir, "tls")
	api := opensslOut(t, "x509", "-noout", "-text", "-in", filepath.Join(tls, "api.pem"))
	for _, want := range []string{"DNS:localhost, IP Address:127.0.0.1", "TLS Web Server Authentication, TLS Web Client Authentication", "Public-Key: (2048 bit)", "Key Encipherment"} {
		if !strings.Contains(api, want) {
			t.Errorf("the exec-issued api certificate lacks %q:\n%s", want, api)
		}
	}
	agent := opensslOut(t, "x509", "-noout", "-text", "-in", filepath.Join(tls, "agent-1.pem"))
	for _, want := range []string{"NIST CURVE: P-384", "TLS Web Client Authentication"} {
		if !strings.Contains(agent, want) {
			t.Errorf("the exec-issued agent certificate lacks %q:\n%s", want, agent)
		}
	}
	for _, unwanted := range []string{"Subject Alternative Name", "TLS Web Server Authentication", "Key Encipherment"} {
		if strings.Contains(agent, unwanted) {
			t.Errorf("the exec-issued agent certificate has %q, which its profile and key type do not ask for:\n%s", unwanted, agent)
		}
	}

	// The tool that owns the followed files writes them: now every
	// certificate is in place.
	mustRun(t, dir, nil, "--config", cfg, "issue", "followed", "--profile", "server", "--hosts", "localhost", "--out", filepath.Join(dir, "other"))
	r = mustRun(t, dir, path, "--config", cfg, "issue", "--all")
	if !strings.Contains(r.stdout, "validated followed (issuer files") || strings.Contains(r.stderr, "created a new local CA") {
		t.Fatalf("second issue --all:\n%s%s", r.stdout, r.stderr)
	}
}

// TestRenewForceSaysWhatItLeftToTheDaemon: renew installs and says so, and
// says that it told no process and restarted nothing, instead of logging
// that consumers took the certificate.
func TestRenewForceSaysWhatItLeftToTheDaemon(t *testing.T) {
	dir := t.TempDir()
	cfg := daemonConfig(t, dir, "1h", "33%", "    services: [backend]\nservices:\n  - {name: backend, action: none}\n")
	mustRun(t, dir, nil, "renew", "backend-1", "--config", cfg)
	r := mustRun(t, dir, nil, "renew", "backend-1", "--config", cfg, "--force")
	for _, want := range []string{"backend-1: renewed: serial", "generation 2, installed at " + filepath.Join(dir, "tls", "backend-1.pem"),
		"Not done by this command: no process was told and nothing was restarted",
		"the services it lists (backend) act, as their presets decide, after service-actions.coalesce (10s)"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("renew --force does not say %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stderr, "consumers took the certificate") {
		t.Errorf("renew claims consumers took the certificate, which only a daemon does:\n%s", r.stderr)
	}
}

// TestDaemonWarnsOfAnEmptySAN: a certificate in use with the guide's empty
// DNS SAN (cfssl with ADDRESS=,backend-1) is a warning in the daemon's
// log, as in status; the CA the daemon creates is logged too.
func TestDaemonWarnsOfAnEmptySAN(t *testing.T) {
	bin := daemonBuildTools(t, "github.com/cloudflare/cfssl/cmd/cfssl", "github.com/cloudflare/cfssl/cmd/cfssljson")
	dir := t.TempDir()
	guide := filepath.Join(dir, "guide")
	mustRun(t, dir, nil, "ca", "init", "--dir", guide)
	writeTestFile(t, filepath.Join(guide, "ca-config.json"),
		`{"signing":{"default":{"expiry":"8760h","usages":["signing","key encipherment","server auth","client auth"]}}}`)
	gencert := exec.Command("/bin/sh", "-c", `echo '{"CN":"flawed","hosts":[""],"key":{"algo":"ecdsa","size":256}}' |
		cfssl gencert -ca=ca.pem -ca-key=ca-key.pem -config=ca-config.json -hostname=",flawed" - | cfssljson -bare flawed`)
	gencert.Dir = guide
	gencert.Env = append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	if out, err := gencert.CombinedOutput(); err != nil {
		t.Fatalf("cfssl gencert: %v\n%s", err, out)
	}
	cfg := daemonConfig(t, dir, "1h", "33%", fmt.Sprintf(`  - name: flawed
    profile: backend
    hosts: [flawed]
    cert-file: %[1]s/flawed.pem
    key-file: %[1]s/flawed-key.pem
    ca-file: %[1]s/ca.pem
    issuer: files
`, guide))
	d := daemonStart(t, dir, cfg)
	// The runners start concurrently: wait for the last of the lines, then
	// look for all of them.
	d.waitLog(`msg="certificate changed" name=backend-1 reason=initial`, 20*time.Second)
	logged := strings.Join(d.lines(), "\n")
	for _, want := range []string{
		`msg="created a new local CA (ca.create is true): peers trust what it signs only once they have its ca.pem" name=backend-1 ca=` + filepath.Join(dir, "ca", "ca.pem"),
		`level=WARN msg="the certificate in use has a flaw: an empty DNS name is among the SANs`,
	} {
		if !strings.Contains(logged, want) {
			t.Errorf("the daemon did not log %q", want)
		}
	}
	if n := strings.Count(logged, "has a flaw"); n != 1 || !strings.Contains(logged, "name=flawed serial=") {
		t.Errorf("want one flaw warning, for certificate flawed; got %d", n)
	}
}

// TestLintUnreadableLinkPointsAtTheConfigKeys: a key file sensu-tlsd
// installed (a link it replaces at every renewal) that the Sensu user
// cannot read gets the fix that lasts: the group and key-mode config keys,
// not a chgrp the next renewal undoes.
func TestLintUnreadableLinkPointsAtTheConfigKeys(t *testing.T) {
	testpeer.NeedRoot(t, "the readability check reads as the nobody account, which needs root")
	nobody, err := user.Lookup("nobody")
	testpeer.NeedPeer(t, err == nil, "the readability check needs the nobody account")
	group, err := user.LookupGroupId(nobody.Gid)
	if err != nil {
		t.Fatal(err)
	}
	dir, cfg := cliConfig(t, "")
	mustRun(t, "", nil, "--config", cfg, "issue", "--all")
	key := filepath.Join(dir, "tls", "backend-1-key.pem")
	if fi, err := os.Lstat(key); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("sensu-tlsd did not install %s as a link (%v, %v)", key, fi, err)
	}
	backend := filepath.Join(dir, "backend.yml")
	writeTestFile(t, backend, "cert-file: "+filepath.Join(dir, "tls", "backend-1.pem")+"\nkey-file: "+key+"\n")
	r := run(t, "", nil, "lint", "--user", "nobody", backend)
	want := fmt.Sprintf(`set defaults.group: %s and defaults.key-mode: "0640" in its config (or group and key-mode on that certificate)`, group.Name)
	if !strings.Contains(r.stdout, key+" is not readable by the nobody user") || !strings.Contains(r.stdout, want) {
		t.Fatalf("lint of an unreadable installed key: exit %d\n%s\nwant the fix %q", r.code, r.stdout, want)
	}
}
