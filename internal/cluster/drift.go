package cluster

import (
	"fmt"
	"slices"
	"strings"
)

// Drift compares what etcd says about member b against b's backend.yml:
// the peer URLs etcd stores (which etcd-initial-advertise-peer-urls no
// longer changes once the member has data) and the client URLs the
// running member published when it started (a backend still running an
// older config publishes the old ones). Each entry says what differs and
// what to do; none means the member runs what its file says.
func Drift(v View, b *Backend) []string {
	m, ok := v.Member(b.Name)
	if !ok {
		return []string{fmt.Sprintf("%s names etcd member %q (etcd-name), which the cluster does not list (members: %s): fix etcd-name or add the member with etcdctl member add", b.File, b.Name, v.names())}
	}
	var out []string
	if !sameURLs(m.PeerURLs, b.AdvertisePeerURLs) {
		out = append(out, fmt.Sprintf("etcd stores peer URLs %s for %s but %s advertises %s (etcd-initial-advertise-peer-urls, ignored once the member has data): move them member by member with the cluster cutover, or `etcdctl member update %x --peer-urls=%s`",
			strings.Join(m.PeerURLs, ","), m.Name, b.File, strings.Join(b.AdvertisePeerURLs, ","), m.ID, strings.Join(b.AdvertisePeerURLs, ",")))
	}
	if m.Healthy && len(m.ClientURLs) > 0 && !sameURLs(m.ClientURLs, b.ClientURLs) {
		out = append(out, fmt.Sprintf("%s runs with client URLs %s but %s says %s: the backend is not running its file's config; restart sensu-backend",
			m.Name, strings.Join(m.ClientURLs, ","), b.File, strings.Join(b.ClientURLs, ",")))
	}
	return out
}

func sameURLs(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
