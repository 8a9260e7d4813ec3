package cluster

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// An environment file's etcd settings win over backend.yml's, as
// sensu-backend reads them, and the client's credentials come along.
func TestBackendOfReadsTheEnvironmentFileOverBackendYML(t *testing.T) {
	dir := t.TempDir()
	yml, env := filepath.Join(dir, "backend.yml"), filepath.Join(dir, "sensu-backend")
	os.WriteFile(yml, []byte("etcd-advertise-client-urls: http://127.0.0.1:2379\netcd-client-username: from-yaml\n"), 0o600)
	os.WriteFile(env, []byte("SENSU_BACKEND_ETCD_CLIENT_URLS=\"https://10.0.0.1:2379 https://10.0.0.2:2379\"\nSENSU_BACKEND_ETCD_CLIENT_PASSWORD=secret\n"), 0o600)
	b, err := ReadBackend(yml, []string{env})
	if err != nil {
		t.Fatal(err)
	}
	cfg := b.Config()
	if !slices.Equal(cfg.Endpoints, []string{"https://10.0.0.1:2379", "https://10.0.0.2:2379"}) || cfg.Username != "from-yaml" || cfg.Password != "secret" || cfg.Source != yml {
		t.Errorf("config = %+v", cfg)
	}
	cfg.CertFile = filepath.Join(dir, "client.pem")
	if _, err := cfg.tlsConfig(); err == nil || !strings.Contains(err.Error(), "etcd-key-file is not") {
		t.Errorf("a client certificate without its key: %v", err)
	}
}
