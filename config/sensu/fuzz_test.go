package sensu

import (
	"errors"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// editorSeeds are shapes the editor must handle: every one is edited
// without a refusal.
var editorSeeds = []string{
	"a: 1\n", "backend-url:\n  - ws://a:8081\n", "cert-file: |\n  x\n", "x: &a 1\ny: *a\n",
	"api-url: 'http://h:8080' # c\n", "{a: 1, api-url: http://x}\n", "k: [a, 'b', \"c\"]\n",
	"etcd-initial-cluster: a=http://x:2380,b=http://y:2380\n", "# only\n", "labels:\n  a: b\n",
	"name: w\r\nbackend-url:\r\n  - ws://a:8081\r\n", "backend-url: \"ws://a:8081,ws://b:8081\"\n",
	"etcd-listen-client-urls: http://a:2379 http://b:2379\n", "x: &a 1\ncert-file: *a\n", "key-file: &k /k.pem\ny: 2\n",
}

// editTLS runs the owned-key edits on src. It fails the test when the
// editor panics, refuses a shape it has no reason to refuse, writes
// something that is not YAML or loses or changes a key sensu-tlsd does
// not own. It reports whether the edit was refused (for a known reason).
func editTLS(t *testing.T, src []byte) (refused bool) {
	t.Helper()
	d, err := Parse("fuzz.yml", src)
	if err != nil {
		return false
	}
	var before map[string]any
	if yaml.Unmarshal(src, &before) != nil {
		return false
	}
	ApplyBackendTLS(d, testCerts)
	ApplyAgentTLS(d, AgentTLS{CAFile: "/ca.pem"})
	out, err := d.Bytes()
	switch {
	case errors.Is(err, ErrDuplicateKey) || errors.Is(err, ErrSharedAnchor):
		if !strings.HasPrefix(err.Error(), "fuzz.yml: line ") {
			t.Fatalf("refusal does not name the file and line: %v", err)
		}
		return true
	case err != nil:
		t.Fatalf("refused for no known reason: %v\nin:\n%q", err, src)
	}
	var after map[string]any
	if err := yaml.Unmarshal(out, &after); err != nil {
		t.Fatalf("edited output is not YAML: %v\n%s", err, out)
	}
	for k, v := range before {
		if Owned(Backend, k) || Owned(Agent, k) {
			continue
		}
		w, ok := after[k]
		if !ok || !equalAny(v, w) {
			t.Fatalf("foreign key %q lost or changed: %v -> %v\nin:\n%s\nout:\n%s", k, v, w, src, out)
		}
	}
	return false
}

func TestEditorAcceptsEveryFuzzSeed(t *testing.T) {
	for _, s := range editorSeeds {
		if editTLS(t, []byte(s)) {
			t.Errorf("seed %q refused", s)
		}
	}
}

// FuzzEditor feeds arbitrary YAML through the owned-key edits: never a
// panic, refusals only for the shapes the editor names (ErrDuplicateKey,
// ErrSharedAnchor), and every key sensu-tlsd does not own survives.
func FuzzEditor(f *testing.F) {
	for _, s := range editorSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, src []byte) { editTLS(t, src) })
}

// FuzzEnvFile: any environment file parses or is refused with an error,
// lints with complete findings; an unedited file is written back byte for
// byte, and an edited one parses again with the new value.
func FuzzEnvFile(f *testing.F) {
	for _, s := range []string{
		"SENSU_BACKEND_URL=\"ws://a:8081 ws://b:8081\"\n", "export SENSU_BACKEND_URL=ws://a\n# c\n",
		"SENSU_BACKEND_URL='ws://x'", "A=\"unterminated\n", "=x\n", "SENSU_TRUSTED_CA_FILE=/a b\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		e, err := ParseEnvFile("fuzz.env", src, Agent)
		if err != nil {
			return
		}
		if string(e.Bytes()) != string(src) {
			t.Fatalf("unedited env file changed:\n%q\n%q", src, e.Bytes())
		}
		for _, fd := range LintEnv(e, LintOptions{User: "root"}) {
			if fd.Key == "" || fd.Fix == "" || fd.What == "" || fd.Line < 1 {
				t.Fatalf("incomplete env finding %+v", fd)
			}
		}
		ApplyAgentTLS(e, AgentTLS{CAFile: "/etc/sensu/ca dir/ca.pem"})
		again, err := ParseEnvFile("fuzz.env", e.Bytes(), Agent)
		if err != nil {
			t.Fatalf("edited env file no longer parses: %v\n%q", err, e.Bytes())
		}
		if v, ok := e.Get("trusted-ca-file"); ok {
			if w, _ := again.Get("trusted-ca-file"); w.Scalar != v.Scalar {
				t.Fatalf("trusted-ca-file reads %q after writing %q\n%q", w.Scalar, v.Scalar, e.Bytes())
			}
		}
	})
}

// FuzzLint: any document lints without a panic and every finding names a
// key and a fix.
func FuzzLint(f *testing.F) {
	for _, s := range []string{"cert_file: /x\n", "backend-url: [ws://a, wss://b]\n", "api-url: https://[::1\n", "etcd-initial-cluster: a=,=b\n", "\"\": a\n\"\": b\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		d, err := Parse("fuzz.yml", src)
		if err != nil {
			return
		}
		for _, r := range []Role{Backend, Agent} {
			for _, fd := range Lint(d, r, LintOptions{User: "root"}) {
				if fd.Key == "" || fd.Fix == "" || fd.What == "" {
					t.Fatalf("incomplete finding %+v", fd)
				}
			}
		}
	})
}
