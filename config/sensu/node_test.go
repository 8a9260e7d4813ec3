package sensu

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func writeText(t *testing.T, path, text string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestReadNodeResolvesAsSensu: the last of a duplicate key, environment
// files over the YAML file (the later file over the
// earlier, an empty variable as unset, lists split on spaces), defaults
// for what nothing sets, and a missing environment file skipped.
func TestReadNodeResolvesAsSensu(t *testing.T) {
	dir := t.TempDir()
	yml := writeText(t, filepath.Join(dir, "backend.yml"), strings.Join([]string{
		"cert-file: /old/backend.pem",
		"key-file: /tls/backend-key.pem",
		"trusted-ca-file: /tls/ca.pem",
		"api-listen-address: 10.0.0.5:9080",
		"agent-port: 9081",
		"cert-file: /tls/backend.pem",
	}, "\n")+"\n")
	first := writeText(t, filepath.Join(dir, "default-sensu-backend"),
		"SENSU_BACKEND_TRUSTED_CA_FILE=/env/ca.pem\nSENSU_BACKEND_AGENT_PORT=7081\nSENSU_BACKEND_ETCD_LISTEN_CLIENT_URLS=\"https://a:2379 https://b:2379\"\n")
	second := writeText(t, filepath.Join(dir, "sysconfig-sensu-backend"),
		"# later files win\nSENSU_BACKEND_AGENT_PORT=6081\nSENSU_BACKEND_KEY_FILE=\nSENSU_BACKEND_LOG_LEVEL=debug\n")
	n, err := ReadNode(Backend, yml, []string{first, filepath.Join(dir, "missing"), second})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(n.Files, []string{yml, first, second}) {
		t.Errorf("files read %q", n.Files)
	}
	for key, want := range map[string]string{
		"cert-file":          "/tls/backend.pem",     // the last duplicate
		"key-file":           "/tls/backend-key.pem", // an empty variable is unset
		"trusted-ca-file":    "/env/ca.pem",
		"agent-port":         "6081",
		"api-url":            "http://localhost:8080", // the default
		"api-listen-address": "10.0.0.5:9080",
	} {
		if got := n.Str(key); got != want {
			t.Errorf("%s = %q, want %q", key, got, want)
		}
	}
	if got, _ := n.Get("etcd-listen-client-urls"); !slices.Equal(got.List, []string{"https://a:2379", "https://b:2379"}) {
		t.Errorf("list from the environment %q", got.List)
	}
	if got := n.Where("agent-port"); got != second+" SENSU_BACKEND_AGENT_PORT" {
		t.Errorf("agent-port set in %q", got)
	}
	if got := n.Where("cert-file"); got != yml {
		t.Errorf("cert-file set in %q", got)
	}
	if got := n.KeysNaming("/tls/./backend.pem"); !slices.Equal(got, []string{"cert-file"}) {
		t.Errorf("keys naming backend.pem %q", got)
	}
	if got := n.KeysNaming("/old/backend.pem"); len(got) != 0 {
		t.Errorf("the overridden cert-file is named by %q", got)
	}
	if !n.Reads(second) || n.Reads(filepath.Join(dir, "missing")) {
		t.Error("Reads: the files read, not the missing one")
	}
	if got := n.BackendListeners(); got != (BackendListeners{API: "10.0.0.5:9080", Agent: "127.0.0.1:6081", TLS: true}) {
		t.Errorf("listeners %+v", got)
	}
	if got := n.BackendListeners().HealthURL(); got != "https://10.0.0.5:9080/health" {
		t.Errorf("health %q", got)
	}

	before := n.Digest()
	writeText(t, second, "SENSU_BACKEND_AGENT_PORT=6082\n")
	again, err := ReadNode(Backend, yml, []string{first, second})
	if err != nil {
		t.Fatal(err)
	}
	if again.Digest() == before {
		t.Error("rewriting an environment file left the digest alone")
	}
}

// TestReadNodeErrorsNameTheFile: an unreadable or broken file is a
// *ReadError naming it; sensu-backend would not start with it either.
func TestReadNodeErrorsNameTheFile(t *testing.T) {
	dir := t.TempDir()
	yml := writeText(t, filepath.Join(dir, "backend.yml"), "cert-file: /tls/b.pem\n")
	broken := writeText(t, filepath.Join(dir, "broken.yml"), "cert-file: [unclosed\n")
	quote := writeText(t, filepath.Join(dir, "sensu-backend"), "SENSU_BACKEND_CERT_FILE=\"/tls/b.pem\n")
	for _, c := range []struct {
		yml  string
		env  []string
		file string
	}{
		{filepath.Join(dir, "missing.yml"), nil, filepath.Join(dir, "missing.yml")},
		{broken, nil, broken},
		{yml, []string{quote}, quote},
		{yml, []string{dir}, dir}, // a directory
	} {
		_, err := ReadNode(Backend, c.yml, c.env)
		var re *ReadError
		if !errors.As(err, &re) || re.File != c.file || !strings.Contains(err.Error(), c.file) {
			t.Errorf("%s %v: err %v, want a ReadError naming %s", c.yml, c.env, err, c.file)
		}
	}
}

func TestDefaultsAndEndpoints(t *testing.T) {
	if got := DefaultBackendListeners(); got != (BackendListeners{API: "127.0.0.1:8080", Agent: "127.0.0.1:8081"}) {
		t.Errorf("default listeners %+v", got)
	}
	if got := DefaultBackendListeners().HealthURL(); got != "http://127.0.0.1:8080/health" {
		t.Errorf("default health %q", got)
	}
	if got := DefaultAgentHealthURL(); got != "http://127.0.0.1:3031/healthz" {
		t.Errorf("agent health %q", got)
	}
	if got := EnvFilesOf(Backend, nil); !slices.Equal(got, []string{"/etc/default/sensu-backend", "/etc/sysconfig/sensu-backend"}) {
		t.Errorf("standard env files %q", got)
	}
	if got := EnvFilesOf(Agent, []string{"/srv/agent.env"}); !slices.Equal(got, []string{"/srv/agent.env"}) {
		t.Errorf("configured env files %q", got)
	}
}

// TestCertKeysTable: every key the table names is a setting its role
// reads, owned by sensu-tlsd, and only the embedded etcd's files (and the
// agent's, read at each connection) are read again without a restart.
func TestCertKeysTable(t *testing.T) {
	for _, r := range []Role{Backend, Agent} {
		for _, k := range CertKeysOf(r) {
			for _, key := range k.Files() {
				if !KnownKey(r, key) || !Owned(r, key) {
					t.Errorf("%s: %s is not a known, owned setting", r, key)
				}
			}
			for _, key := range append(slices.Clone(k.ClientURLs), k.Listen...) {
				if !KnownKey(r, key) {
					t.Errorf("%s: host setting %s is unknown", r, key)
				}
			}
		}
	}
	var again []string
	for _, key := range fileKeys(Backend) {
		if ReadsAgain(Backend, key) {
			again = append(again, key)
		}
	}
	if want := []string{"etcd-cert-file", "etcd-key-file", "etcd-trusted-ca-file", "etcd-peer-cert-file", "etcd-peer-key-file", "etcd-peer-trusted-ca-file"}; !slices.Equal(again, want) {
		t.Errorf("backend keys read again %q, want %q", again, want)
	}
	if ReadsAgain(Backend, "jwt-private-key-file") || ReadsAgain(Backend, "agent-auth-cert-file") {
		t.Error("a key read at start is reported as read again")
	}
}

// FuzzNode: whatever a backend.yml and an environment file hold, resolving
// them as a node and deriving what the service trigger asks (listeners,
// the keys naming a file) never panics, and the agent listener derived for
// a probe is one a dialer accepts.
func FuzzNode(f *testing.F) {
	f.Add([]byte("cert-file: /a\ncert-file: /b\napi-listen-address: '[::]:9080'\nagent-port: x\n"), []byte("SENSU_BACKEND_CERT_FILE=/c\n"))
	f.Add([]byte("etcd-listen-client-urls: [a, b]\nx: {y: z}\n"), []byte("SENSU_BACKEND_AGENT_HOST=\"::\"\n"))
	f.Add([]byte("- not a map\n"), []byte("export SENSU_BACKEND_KEY_FILE='/k'\n"))
	f.Fuzz(func(t *testing.T, yml, env []byte) {
		d, err := Parse("backend.yml", yml)
		if err != nil {
			return
		}
		e, err := ParseEnvFile("sensu-backend", env, Backend)
		if err != nil {
			return
		}
		n := NodeOf(Backend, d, e)
		l := n.BackendListeners()
		if _, _, err := net.SplitHostPort(l.Agent); err != nil {
			t.Fatalf("agent listener %q is no host:port: %v", l.Agent, err)
		}
		_ = n.KeysNaming("/a")
		_ = n.Where("cert-file")
	})
}
