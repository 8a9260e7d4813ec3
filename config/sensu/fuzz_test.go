package sensu

import (
	"testing"

	"go.yaml.in/yaml/v3"
)

// FuzzEditor feeds arbitrary YAML through the owned-key edits: never a
// panic, and every key sensu-tlsd does not own survives with its value.
func FuzzEditor(f *testing.F) {
	for _, s := range []string{
		"a: 1\n", "backend-url:\n  - ws://a:8081\n", "cert-file: |\n  x\n", "x: &a 1\ny: *a\n",
		"api-url: 'http://h:8080' # c\n", "{a: 1, api-url: http://x}\n", "k: [a, 'b', \"c\"]\n",
		"etcd-initial-cluster: a=http://x:2380,b=http://y:2380\n", "# only\n", "labels:\n  a: b\n",
		"name: w\r\nbackend-url:\r\n  - ws://a:8081\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		d, err := Parse("fuzz.yml", src)
		if err != nil {
			return
		}
		var before map[string]any
		if yaml.Unmarshal(src, &before) != nil {
			return
		}
		ApplyBackendTLS(d, testCerts)
		ApplyAgentTLS(d, AgentTLS{CAFile: "/ca.pem"})
		out, err := d.Bytes()
		if err != nil {
			return // refused: nothing written, nothing lost
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
	})
}

// FuzzEnvFile: any environment file parses or is refused with an error;
// an unedited file is written back byte for byte, and an edited one parses
// again with the new value.
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
	for _, s := range []string{"cert_file: /x\n", "backend-url: [ws://a, wss://b]\n", "api-url: https://[::1\n", "etcd-initial-cluster: a=,=b\n"} {
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
