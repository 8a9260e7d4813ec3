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
