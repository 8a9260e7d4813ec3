package sensu

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/sensu-tlsd/sensu-tlsd/internal/golden"
	"github.com/sensu-tlsd/sensu-tlsd/internal/testpeer"
	"go.yaml.in/yaml/v3"
)

var testCerts = BackendTLS{
	API:      CertPaths{"/etc/sensu/tls/backend.pem", "/etc/sensu/tls/backend-key.pem", "/etc/sensu/tls/ca.pem"},
	Etcd:     CertPaths{"/etc/sensu/tls/backend.pem", "/etc/sensu/tls/backend-key.pem", "/etc/sensu/tls/ca.pem"},
	EtcdPeer: CertPaths{"/etc/sensu/tls/peer.pem", "/etc/sensu/tls/peer-key.pem", "/etc/sensu/tls/ca.pem"},
}

func samples(t *testing.T, pattern string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", pattern))
	if err != nil || len(files) == 0 {
		t.Fatalf("no samples %s: %v", pattern, err)
	}
	return files
}

func parseFile(t *testing.T, path string) *Document {
	t.Helper()
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	d, err := Parse(path, src)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestRoundTripWithNothingToChangeIsByteIdentical(t *testing.T) {
	for _, f := range samples(t, "*.yml") {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		d := parseFile(t, f)
		// Setting every key to the value it already has is no change.
		for _, k := range d.Keys() {
			if v, ok := d.Get(k); ok {
				d.Set(k, v)
			}
		}
		out, err := d.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out, src) {
			t.Errorf("%s: round trip changed the bytes:\n%s", f, Diff("in", "out", src, out))
		}
	}
}

func TestApplyTLSGoldenAndIdempotent(t *testing.T) {
	for _, f := range samples(t, "*.yml") {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		d := parseFile(t, f)
		role, err := DetectRole(d)
		if err != nil {
			t.Fatal(err)
		}
		apply := func(s Settings) {
			if role == Backend {
				ApplyBackendTLS(s, testCerts)
			} else {
				ApplyAgentTLS(s, AgentTLS{CAFile: "/etc/sensu/tls/ca.pem"})
			}
		}
		apply(d)
		out, err := d.Bytes()
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		golden.Check(t, filepath.Join("testdata", "golden", strings.TrimSuffix(filepath.Base(f), ".yml")+".tls.yml"), out)
		assertForeignKeysKept(t, src, out, role)

		again, err := Parse(f, out)
		if err != nil {
			t.Fatal(err)
		}
		apply(again)
		if again.Changed() {
			twice, _ := again.Bytes()
			t.Errorf("%s: applying TLS twice changes it again:\n%s", f, Diff("once", "twice", out, twice))
		}
	}
}

// assertForeignKeysKept checks every key sensu-tlsd does not own reads the
// same before and after.
func assertForeignKeysKept(t *testing.T, before, after []byte, role Role) {
	t.Helper()
	var a, b map[string]any
	if err := yaml.Unmarshal(before, &a); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(after, &b); err != nil {
		t.Fatalf("result is not YAML: %v\n%s", err, after)
	}
	for k, v := range a {
		if Owned(role, k) {
			continue
		}
		if w, ok := b[k]; !ok || !equalAny(v, w) {
			t.Errorf("foreign key %q changed: %v -> %v", k, v, w)
		}
	}
}

func equalAny(a, b any) bool {
	x, _ := yaml.Marshal(a)
	y, _ := yaml.Marshal(b)
	return bytes.Equal(x, y)
}

func TestAgentClusterKeepsEveryMemberAndComment(t *testing.T) {
	d := parseFile(t, "testdata/agent-cluster.yml")
	ApplyAgentTLS(d, AgentTLS{CAFile: "/ca.pem"})
	out, err := d.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`  - "wss://10.0.0.1:8081"  # backend-1`,
		`  - "wss://10.0.0.2:8081"  # backend-2`,
		`  - "wss://10.0.0.3:8081"  # backend-3`,
		"trusted-ca-file: /ca.pem\ninsecure-skip-tls-verify: false\n",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("missing %q in\n%s", want, out)
		}
	}
}

func TestEditShapes(t *testing.T) {
	cases := []struct {
		name, in string
		edit     func(d *Document)
		want     string
	}{
		{"empty value", "a: 1\ncert-file:\nb: 2\n", func(d *Document) { d.Set("cert-file", Str("/x.pem")) }, "a: 1\ncert-file: /x.pem\nb: 2\n"},
		{"empty value with comment", "cert-file: # set me\n", func(d *Document) { d.Set("cert-file", Str("/x.pem")) }, "cert-file: /x.pem # set me\n"},
		{"single quoted", "cert-file: '/old.pem'\n", func(d *Document) { d.Set("cert-file", Str("/new.pem")) }, "cert-file: '/new.pem'\n"},
		{"plain with comment", "api-url: http://h:8080   # api\n", func(d *Document) { d.Set("api-url", Str("https://h:8080")) }, "api-url: https://h:8080   # api\n"},
		{"flow list longer", "backend-url: [\"ws://a:8081\"]\n", func(d *Document) { d.Set("backend-url", List("wss://a:8081", "wss://b:8081")) }, "backend-url: [\"wss://a:8081\", \"wss://b:8081\"]\n"},
		{"block list shorter", "backend-url:\n    - ws://a\n    - ws://b\nx: 1\n", func(d *Document) { d.Set("backend-url", List("wss://a")) }, "backend-url:\n    - wss://a\nx: 1\n"},
		{"scalar to list", "backend-url: ws://a:8081\n", func(d *Document) { d.Set("backend-url", List("wss://a:8081")) }, "backend-url: [wss://a:8081]\n"},
		{"append without final newline", "a: 1", func(d *Document) { d.Set("cert-file", Str("/x")) }, "a: 1\ncert-file: /x\n"},
		{"append list", "a: 1\n", func(d *Document) { d.Set("backend-url", List("wss://a")) }, "a: 1\nbackend-url:\n  - wss://a\n"},
		{"empty file", "", func(d *Document) { d.Set("cert-file", Str("/x")) }, "cert-file: /x\n"},
		{"comments only", "# nothing yet\n", func(d *Document) { d.Set("agent-port", Str("18081")) }, "# nothing yet\nagent-port: \"18081\"\n"},
		{"delete", "a: 1\nagent-host: 127.0.0.1 # moved\nb: 2\n", func(d *Document) { d.Delete("agent-host") }, "a: 1\nb: 2\n"},
		{"delete list", "a: 1\nx:\n  - p\n  - q\nb: 2\n", func(d *Document) { d.Delete("x") }, "a: 1\nb: 2\n"},
		{"bool keeps string quoting meaning", "etcd-peer-client-cert-auth: \"true\"\n", func(d *Document) { d.Set("etcd-peer-client-cert-auth", Bool(true)) }, "etcd-peer-client-cert-auth: \"true\"\n"},
		{"bool from true", "insecure-skip-tls-verify: true\n", func(d *Document) { d.Set("insecure-skip-tls-verify", Bool(false)) }, "insecure-skip-tls-verify: false\n"},
		{"needs quoting", "a: 1\n", func(d *Document) { d.Set("api-listen-address", Str("[::]:8080")) }, "a: 1\napi-listen-address: '[::]:8080'\n"},
		{"document end marker", "a: 1\n...\n", func(d *Document) { d.Set("b", Str("2")) }, "a: 1\nb: \"2\"\n"},
		{"crlf", "name: a\r\nbackend-url:\r\n  - ws://a:8081\r\n  - ws://b:8081\r\n", func(d *Document) {
			d.Set("backend-url", List("wss://a:8081"))
			d.Set("trusted-ca-file", Str("C:\\ProgramData\\sensu\\ca.pem"))
		}, "name: a\r\nbackend-url:\r\n  - wss://a:8081\r\ntrusted-ca-file: C:\\ProgramData\\sensu\\ca.pem\r\n"},
		{"utf8 before value", "# ünïcode\nname: \"héllo\"\napi-url: http://x\n", func(d *Document) { d.Set("api-url", Str("https://x")) }, "# ünïcode\nname: \"héllo\"\napi-url: https://x\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, err := Parse(c.name, []byte(c.in))
			if err != nil {
				t.Fatal(err)
			}
			c.edit(d)
			out, err := d.Bytes()
			if err != nil {
				t.Fatal(err)
			}
			if string(out) != c.want {
				t.Errorf("got\n%q\nwant\n%q", out, c.want)
			}
		})
	}
}

func TestEditFallsBackToReencodeForBlockScalars(t *testing.T) {
	in := "# keep me\ncert-file: |\n  /old.pem\nother: 1\n"
	d, err := Parse("t", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	d.Set("cert-file", Str("/new.pem"))
	out, err := d.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "# keep me") || !strings.Contains(string(out), "other: 1") || !strings.Contains(string(out), "cert-file: /new.pem") {
		t.Errorf("re-encoded result lost something:\n%s", out)
	}
}

func TestParseRejectsWhatSensuCannotRead(t *testing.T) {
	for in, want := range map[string]string{
		"- a\n- b\n":        "must be a mapping",
		"a: 1\n---\nb: 2\n": "second YAML document",
		"a: [\n":            "not valid YAML",
	} {
		_, err := Parse("backend.yml", []byte(in))
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "backend.yml") {
			t.Errorf("Parse(%q) = %v, want an error naming the file and %q", in, err, want)
		}
	}
}

func TestEnvFileEditsOnlyWhatItSets(t *testing.T) {
	src, err := os.ReadFile("testdata/sensu-agent.env")
	if err != nil {
		t.Fatal(err)
	}
	e, err := ParseEnvFile("sensu-agent", src, Agent)
	if err != nil {
		t.Fatal(err)
	}
	ApplyAgentTLS(e, AgentTLS{CAFile: "/etc/sensu/tls/ca.pem"})
	want := "# /etc/default/sensu-agent\nSENSU_BACKEND_URL=\"wss://10.0.0.1:8081 wss://10.0.0.2:8081\"\nSENSU_NAMESPACE=default\nexport SENSU_LOG_LEVEL=info\n"
	if got := string(e.Bytes()); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}

	src, err = os.ReadFile("testdata/sensu-backend.env")
	if err != nil {
		t.Fatal(err)
	}
	b, err := ParseEnvFile("sensu-backend", src, Backend)
	if err != nil {
		t.Fatal(err)
	}
	ApplyBackendTLS(b, testCerts)
	want = "# /etc/sysconfig/sensu-backend\nSENSU_BACKEND_API_URL=https://sensu.example.com:8080\nSENSU_BACKEND_ETCD_LISTEN_CLIENT_URLS='https://127.0.0.1:2379'\nSENSU_BACKEND_LOG_LEVEL=debug\n"
	if got := string(b.Bytes()); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}

	unchanged, _ := ParseEnvFile("x", src, Backend)
	if !bytes.Equal(unchanged.Bytes(), src) {
		t.Error("an env file with nothing to change is not byte-identical")
	}
}

func TestWriteFileKeepsModeOwnerAndBackup(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "agent.yml")
	if err := os.WriteFile(path, []byte("a: 1\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		if err := os.Chown(path, 65534, 65534); err != nil {
			t.Fatal(err)
		}
	}
	changed, err := WriteFile(path, []byte("a: 2\n"))
	if err != nil || !changed {
		t.Fatalf("WriteFile = %v, %v", changed, err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640", st.Mode().Perm())
	}
	if os.Geteuid() == 0 {
		if uid := st.Sys().(*syscall.Stat_t).Uid; uid != 65534 {
			t.Errorf("owner %d, want 65534", uid)
		}
	}
	if b, _ := os.ReadFile(path + BackupSuffix); string(b) != "a: 1\n" {
		t.Errorf("backup holds %q", b)
	}
	changed, err = WriteFile(path, []byte("a: 2\n"))
	if err != nil || changed {
		t.Errorf("writing the same bytes again: changed=%v err=%v", changed, err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("left temporary files behind: %v", entries)
	}
}

func TestDiffIsUnified(t *testing.T) {
	a := []byte("a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n")
	b := []byte("a\nB\nc\nd\ne\nf\ng\nh\ni\nj\nk\n")
	want := "--- x\n+++ y\n@@ -1,5 +1,5 @@\n a\n-b\n+B\n c\n d\n e\n@@ -8,3 +8,4 @@\n h\n i\n j\n+k\n"
	if got := Diff("x", "y", a, b); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if Diff("x", "y", a, a) != "" {
		t.Error("equal inputs gave a diff")
	}
}

// TestDiffMatchesGNUDiff checks the plan's diffs against diff -u on every
// sample and its TLS golden file.
func TestDiffMatchesGNUDiff(t *testing.T) {
	_, err := exec.LookPath("diff")
	testpeer.NeedPeer(t, err == nil, "diff (diffutils) not on PATH")
	for _, f := range samples(t, "*.yml") {
		g := filepath.Join("testdata", "golden", strings.TrimSuffix(filepath.Base(f), ".yml")+".tls.yml")
		out, _ := exec.Command("diff", "-u", f, g).Output()
		a, _ := os.ReadFile(f)
		b, _ := os.ReadFile(g)
		mine := Diff(f, g, a, b)
		hunks := func(s string) string { return s[strings.Index(s, "@@"):] }
		if hunks(mine) != hunks(string(out)) {
			t.Errorf("%s: diff -u says\n%s\nDiff says\n%s", f, out, mine)
		}
	}
}

// A key set twice reads as its last occurrence, as Sensu reads it, and an
// edit is refused with the lines and the fix instead of yaml.v3's raw
// "already defined".
func TestEditRefusesDuplicateKeys(t *testing.T) {
	d, err := Parse("/etc/sensu/agent.yml", []byte("name: a\nbackend-url: [ws://a:8081]\nlog-level: info\nbackend-url: [ws://b:8081]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := d.Get("backend-url"); !slices.Equal(v.List, []string{"ws://b:8081"}) || d.Line("backend-url") != 4 {
		t.Errorf("backend-url reads %v at line %d, want the last one (line 4)", v, d.Line("backend-url"))
	}
	ApplyAgentTLS(d, AgentTLS{CAFile: "/ca.pem"})
	_, err = d.Bytes()
	want := "/etc/sensu/agent.yml: line 2: backend-url is set 2 times (lines 2 and 4); Sensu uses line 4, sensu-tlsd will not edit the file until it is set once: delete line 2"
	if !errors.Is(err, ErrDuplicateKey) || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("got %v\nwant %s", err, want)
	}
}

func TestEditRefusesSharedAnchors(t *testing.T) {
	d, err := Parse("backend.yml", []byte("cert-file: &tls /etc/sensu/tls/backend.pem\nkey-file: x\ndashboard-cert-file: *tls\n"))
	if err != nil {
		t.Fatal(err)
	}
	d.Set("cert-file", Str("/new.pem"))
	_, err = d.Bytes()
	want := "backend.yml: line 1: cert-file holds the anchor &tls, which line 3 reads as *tls; changing cert-file would change that line too: write the value out in place of *tls, then retry"
	if !errors.Is(err, ErrSharedAnchor) || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("got %v\nwant %s", err, want)
	}
	// The alias side can change: the anchor stays with its other user.
	d, _ = Parse("backend.yml", []byte("cert-file: &tls /a.pem\ndashboard-cert-file: *tls\n"))
	d.Set("dashboard-cert-file", Str("/b.pem"))
	if out, err := d.Bytes(); err != nil || !strings.Contains(string(out), "cert-file: &tls /a.pem") || !strings.Contains(string(out), "dashboard-cert-file: /b.pem") {
		t.Errorf("changing the alias: %v\n%s", err, out)
	}
}

// Comma-joined URL list entries become one entry per URL, in YAML and in
// environment files; whitespace-separated strings keep their shape.
func TestTLSSplitsCommaJoinedURLLists(t *testing.T) {
	for in, want := range map[string]string{
		"backend-url: \"ws://a:8081,ws://b:8081\"\n":          "backend-url: [\"wss://a:8081\", \"wss://b:8081\"]\n",
		"backend-url:\n  - ws://a:8081, ws://b:8081 # both\n": "backend-url:\n  - wss://a:8081\n  - wss://b:8081 # both\n",
		"backend-url: ws://a:8081 ws://b:8081\n":              "backend-url: wss://a:8081 wss://b:8081\n",
	} {
		d, err := Parse("agent.yml", []byte(in))
		if err != nil {
			t.Fatal(err)
		}
		ApplyAgentTLS(d, AgentTLS{})
		out, err := d.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.TrimSuffix(string(out), "insecure-skip-tls-verify: false\n"); got != want {
			t.Errorf("%q: got\n%s\nwant\n%s", in, got, want)
		}
	}
	e, err := ParseEnvFile("sensu-agent", []byte("SENSU_BACKEND_URL=ws://a:8081,ws://b:8081\n"), Agent)
	if err != nil {
		t.Fatal(err)
	}
	ApplyAgentTLS(e, AgentTLS{})
	if got := string(e.Bytes()); got != "SENSU_BACKEND_URL=\"wss://a:8081 wss://b:8081\"\n" {
		t.Errorf("env file: %s", got)
	}
}

// A list or mapping as a top-level key names no setting: the file is refused
// with the line, before anything compares keys by their empty value.
func TestParseRefusesAListAsAKey(t *testing.T) {
	_, err := Parse("backend.yml", []byte("log-level: info\n? [x]\n: 1\n"))
	var se *SyntaxError
	if !errors.As(err, &se) || se.Line != 2 || !strings.Contains(se.What, "not a list") || se.Fix == "" {
		t.Fatalf("got %v, want a SyntaxError on line 2 naming the list key", err)
	}
}

// A key that is an alias gets the same refusal, in plain English.
func TestParseRefusesAnAliasAsAKey(t *testing.T) {
	_, err := Parse("agent.yml", []byte("name: &n a\n*n : 1\n"))
	var se *SyntaxError
	if !errors.As(err, &se) || se.Line != 2 || !strings.Contains(se.What, "not an alias") {
		t.Fatalf("got %v, want a SyntaxError on line 2 naming the alias key", err)
	}
}
