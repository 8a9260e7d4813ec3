package sensu

import (
	"path/filepath"
	"strings"
)

// embeddedEtcdKeys are the backend.yml keys sensu-backend hands its
// embedded etcd, as etcd flags of the same name without the etcd- prefix.
var embeddedEtcdKeys = []string{"etcd-name", "etcd-listen-client-urls", "etcd-advertise-client-urls", "etcd-listen-peer-urls",
	"etcd-initial-advertise-peer-urls", "etcd-initial-cluster", "etcd-initial-cluster-state", "etcd-initial-cluster-token",
	"etcd-election-timeout", "etcd-heartbeat-interval",
	"etcd-cert-file", "etcd-key-file", "etcd-trusted-ca-file", "etcd-client-cert-auth",
	"etcd-peer-cert-file", "etcd-peer-key-file", "etcd-peer-trusted-ca-file", "etcd-peer-client-cert-auth"}

// DefaultBackendStateDir is state-dir when backend.yml sets none.
const DefaultBackendStateDir = "/var/lib/sensu/sensu-backend"

// EmbeddedEtcdFlags are the command-line flags of a standalone etcd that
// runs as the embedded etcd of the backend whose settings get reads
// (Node.Get or Document.Get): its data in state-dir/etcd and every etcd-*
// key set. Pre-vote is on, as in the embedded etcd 3.5 (an etcd 3.4 needs
// the flag): without it a member restarted onto other peer URLs, not yet
// hearing the leader, campaigns with a higher term and unseats it, an
// election a real Sensu cluster never has.
func EmbeddedEtcdFlags(get func(key string) (Value, bool)) []string {
	flags := []string{"--data-dir=" + filepath.Join(BackendStateDir(get), "etcd"), "--pre-vote=true"}
	for _, key := range embeddedEtcdKeys {
		if v, ok := get(key); ok {
			flags = append(flags, "--"+strings.TrimPrefix(key, "etcd-")+"="+strings.Join(SensuItems(v), ","))
		}
	}
	return flags
}

// BackendStateDir is the backend's state-dir setting, or its default.
func BackendStateDir(get func(key string) (Value, bool)) string {
	if v, ok := get("state-dir"); ok && v.Scalar != "" {
		return v.Scalar
	}
	return DefaultBackendStateDir
}
