package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/internal/testca"
	"github.com/sensu-tlsd/sensu-tlsd/internal/testpeer"
)

func TestStatusAndCheckNameEachBrokenInput(t *testing.T) {
	dir := t.TempDir()
	other := t.TempDir()
	mustRun(t, dir, nil, "--state-dir", dir, "ca", "init")
	mustRun(t, other, nil, "--state-dir", other, "ca", "init")
	issue := func(stateDir, name string, extra ...string) string {
		mustRun(t, dir, nil, append([]string{"--state-dir", stateDir, "issue", name, "--profile", "backend", "--out", stateDir}, extra...)...)
		return filepath.Join(stateDir, name+".pem")
	}
	good := issue(dir, "good")
	wrongCA := issue(other, "wrongca")
	mismatch := issue(dir, "mismatch")
	issue(dir, "spare")
	copyFile(t, filepath.Join(dir, "spare-key.pem"), filepath.Join(dir, "mismatch-key.pem"))
	readable := issue(dir, "readable")
	if err := os.Chmod(filepath.Join(dir, "readable-key.pem"), 0o644); err != nil {
		t.Fatal(err)
	}
	expired := issue(dir, "expired", "--lifetime", "1s")
	encrypted := issue(dir, "encrypted")
	opensslOut(t, "pkey", "-in", filepath.Join(dir, "encrypted-key.pem"), "-aes256", "-passout", "pass:x", "-out", filepath.Join(dir, "enc.tmp"))
	if err := os.Rename(filepath.Join(dir, "enc.tmp"), filepath.Join(dir, "encrypted-key.pem")); err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(dir, "garbage.pem")
	empty := filepath.Join(dir, "empty.pem")
	writeTestFile(t, garbage, "not a cert")
	writeTestFile(t, empty, "")
	time.Sleep(1500 * time.Millisecond) // let the 1s certificate expire

	ca := filepath.Join(dir, "ca.pem")
	cases := []struct {
		file, want string
	}{
		{wrongCA, `which is not in the CA bundle ` + ca},
		{mismatch, "mismatch-key.pem does not belong to the certificate in " + mismatch},
		{readable, "readable-key.pem: mode 0644 gives every user on the machine access to the private key: use 0600"},
		{expired, "validity: expired on"},
		{encrypted, "encrypted-key.pem: the private key is encrypted"},
		{garbage, garbage + ": no PEM certificate found"},
		{empty, empty + ": file is empty"},
	}
	for _, c := range cases {
		r := run(t, dir, nil, "status", c.file, "--ca", ca)
		if r.code != 1 || !strings.Contains(r.stdout, c.want) {
			t.Errorf("status %s: exit %d, want 1 and %q in:\n%s%s", filepath.Base(c.file), r.code, c.want, r.stdout, r.stderr)
		}
	}
	notYet := filepath.Join(dir, "notyet.pem")
	writeNotYetValid(t, notYet, filepath.Join(dir, "notyet-key.pem"))
	if r := run(t, dir, nil, "status", notYet); r.code != 1 || !strings.Contains(r.stdout, "not valid yet") {
		t.Errorf("status of a not-yet-valid cert: exit %d\n%s", r.code, r.stdout)
	}

	for _, c := range []struct {
		args []string
		code int
		line string
	}{
		{[]string{good, "--ca", ca}, 0, "OK: 1 of 1 certificates OK"},
		{[]string{good, "--ca", ca, "--warn", "100d"}, 1, "WARNING: good.pem expires in 89d"},
		{[]string{good, "--ca", ca, "--warn", "100d", "--crit", "95d"}, 2, "CRITICAL: good.pem expires in 89d"},
		{[]string{expired, "--ca", ca}, 2, "CRITICAL: expired.pem expired"},
		{[]string{garbage}, 2, "# CRITICAL: garbage.pem unusable: " + garbage + ": no PEM certificate found"},
		// The certificate reads, its key does not: that is unknown too,
		// with the file and the fix in the status line.
		{[]string{encrypted, "--ca", ca}, 2, "# CRITICAL: encrypted.pem unusable: " + filepath.Join(dir, "encrypted-key.pem") + ": the private key is encrypted; Sensu cannot use a passphrase-protected key: decrypt it"},
		{[]string{mismatch, "--ca", ca}, 2, "# CRITICAL: mismatch.pem fails key matches: the private key in " + filepath.Join(dir, "mismatch-key.pem") + " does not belong to the certificate"},
		{[]string{"--warn", "soon"}, 3, `UNKNOWN: --warn: "soon" is not a duration`},
		{[]string{good, "--warn", "7d", "--crit", "30d"}, 3, "UNKNOWN: --warn 7d is shorter than --crit 30d"},
	} {
		r := run(t, dir, nil, append([]string{"check"}, c.args...)...)
		if r.code != c.code || !strings.Contains(r.stdout+r.stderr, c.line) {
			t.Errorf("check %v: exit %d, want %d with %q:\n%s%s", c.args, r.code, c.code, c.line, r.stdout, r.stderr)
		}
	}
}

func TestStatusReadsSensuConfigs(t *testing.T) {
	dir, cfg := writeGuideConfig(t)
	mustRun(t, "", nil, "--config", cfg, "ca", "init")
	mustRun(t, "", nil, "--config", cfg, "issue", "--all")
	backend := filepath.Join(dir, "backend.yml")
	writeTestFile(t, backend, `api-url: "https://backend-1:8080"
cert-file: "`+dir+`/backend-1.pem"
key-file: "`+dir+`/backend-1-key.pem"
trusted-ca-file: "`+dir+`/ca.pem"
etcd-advertise-client-urls: ["https://backend-2:2379"]
etcd-cert-file: "`+dir+`/backend-1.pem"
etcd-key-file: "`+dir+`/backend-1-key.pem"
etcd-trusted-ca-file: "`+dir+`/ca.pem"
`)
	agent := filepath.Join(dir, "agent.yml")
	writeTestFile(t, agent, "backend-url: [\"wss://backend-1:8081\"]\ntrusted-ca-file: "+dir+"/ca.pem\n")
	r := run(t, "", nil, "status", "--backend-config", backend, "--agent-config", agent)
	if r.code != 1 {
		t.Fatalf("status: exit %d, want 1 (etcd cert does not cover backend-2)\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"backend.yml cert-file", "backend.yml etcd-cert-file", "agent.yml trusted-ca-file",
		"✗ backend.yml etcd-cert-file: SANs: does not cover backend-2"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("status lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "✗ backend.yml cert-file") {
		t.Errorf("the API cert covers backend-1 and must pass:\n%s", r.stdout)
	}
}

// TestCfsslGuideRecipe makes certificates with the real cfssl following the
// guide's commands verbatim (only the binaries' paths differ) and checks
// sensu-tlsd reads and validates them, and flags the empty DNS SAN the
// guide's ADDRESS=,backend-N and "hosts":[""] leave in every one.
func TestCfsslGuideRecipe(t *testing.T) {
	dir := t.TempDir()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	_, statErr := os.Stat(filepath.Join(root, "tools", "go.mod"))
	testpeer.NeedPeer(t, statErr == nil, "tools/go.mod (cfssl) not found")
	tool := func(name string) string {
		bin := filepath.Join(dir, name)
		cmd := exec.Command("go", "build", "-modfile=tools/go.mod", "-o", bin, "github.com/cloudflare/cfssl/cmd/"+name)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			testpeer.NeedPeer(t, false, "cannot build "+name+" from tools/go.mod: "+err.Error()+"\n"+string(out))
		}
		return bin
	}
	cfssl, cfssljson := tool("cfssl"), tool("cfssljson")
	// The guide's commands, as the guide prints them, with cfssl and
	// cfssljson found on PATH.
	script := `
echo '{"CN":"CA","key":{"algo":"rsa","size":2048}}' | cfssl gencert -initca - | cfssljson -bare ca -
echo '{"signing":{"default":{"expiry":"43800h","usages":["signing","key encipherment","server auth","client auth"]}}}' > ca-config.json

export ADDRESS=,backend-1
export NAME=backend-1
echo '{"CN":"'$NAME'","hosts":[""],"key":{"algo":"rsa","size":2048}}' | cfssl gencert -config=ca-config.json -ca=ca.pem -ca-key=ca-key.pem -hostname="$ADDRESS" -profile=peer - | cfssljson -bare $NAME

export ADDRESS=,backend-2
export NAME=backend-2
echo '{"CN":"'$NAME'","hosts":[""],"key":{"algo":"rsa","size":2048}}' | cfssl gencert -config=ca-config.json -ca=ca.pem -ca-key=ca-key.pem -hostname="$ADDRESS" -profile=peer - | cfssljson -bare $NAME

export ADDRESS=,backend-3
export NAME=backend-3
echo '{"CN":"'$NAME'","hosts":[""],"key":{"algo":"rsa","size":2048}}' | cfssl gencert -config=ca-config.json -ca=ca.pem -ca-key=ca-key.pem -hostname="$ADDRESS" -profile=peer - | cfssljson -bare $NAME

export NAME=client
echo '{"CN":"'$NAME'","hosts":[""],"key":{"algo":"rsa","size":2048}}' | cfssl gencert -config=ca-config.json -ca=ca.pem -ca-key=ca-key.pem -hostname="" -profile=client - | cfssljson -bare $NAME

export NAME=agent-1
echo '{"CN":"'$NAME'","hosts":[""],"key":{"algo":"rsa","size":2048}}' | cfssl gencert -config=ca-config.json -ca=ca.pem -ca-key=ca-key.pem -hostname="" -profile=client - | cfssljson -bare $NAME
`
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{cfssl, cfssljson} {
		if err := os.Rename(f, filepath.Join(bin, filepath.Base(f))); err != nil {
			t.Fatal(err)
		}
	}
	sh := exec.Command("sh", "-ec", script)
	sh.Dir = dir
	sh.Env = append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	if out, err := sh.CombinedOutput(); err != nil {
		t.Fatalf("the guide's cfssl commands: %v\n%s", err, out)
	}

	certs := []string{"backend-1.pem", "backend-2.pem", "backend-3.pem", "client.pem", "agent-1.pem"}
	r := run(t, dir, nil, append([]string{"status", "--ca", "ca.pem"}, certs...)...)
	if r.code != 0 || strings.Contains(r.stdout, "✗") {
		t.Fatalf("status of cfssl-made certs: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, `"",backend-1 `) {
		t.Errorf("the empty SAN is not shown:\n%s", r.stdout)
	}
	for _, c := range certs {
		if !strings.Contains(r.stdout, "! "+c+": SANs: an empty DNS name is among the SANs") {
			t.Errorf("status does not warn about %s's empty SAN:\n%s", c, r.stdout)
		}
	}
	// cfssl writes PKCS#1 ("RSA PRIVATE KEY"): it must be read as such.
	key, err := os.ReadFile(filepath.Join(dir, "backend-1-key.pem"))
	if err != nil || !strings.Contains(string(key), "RSA PRIVATE KEY") {
		t.Errorf("expected cfssl to write a PKCS#1 key (%v), got:\n%.40s", err, key)
	}
	chk := run(t, dir, nil, "check", "backend-1.pem", "--ca", "ca.pem")
	if chk.code != 1 || !strings.HasPrefix(chk.stdout, "# WARNING: backend-1.pem SANs: an empty DNS name is among the SANs") {
		t.Errorf("check of a guide certificate: exit %d, want 1 and the empty SAN warning:\n%s%s", chk.code, chk.stdout, chk.stderr)
	}
}

// writeNotYetValid writes a self-signed certificate whose validity starts in
// a year (openssl 3.0's req cannot set a start date).
func writeNotYetValid(t *testing.T, certFile, keyFile string) {
	t.Helper()
	c := testca.SelfSigned(t, testca.Leaf{CN: "notyet", NotBefore: time.Now().Add(365 * 24 * time.Hour), NotAfter: time.Now().Add(2 * 365 * 24 * time.Hour)})
	writeTestFile(t, certFile, string(c.CertPEM))
	writeTestFile(t, keyFile, string(c.KeyPEM))
}
