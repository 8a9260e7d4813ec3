package sensu

import (
	"net"
	"slices"
)

// CertHosts are the hosts a certificate named by k must cover on node n:
// the hosts of k's client URL settings and of its listen settings that are
// not wildcards (Sensu's defaults where no file sets them), and, for a
// certificate whose source address is checked (SourceChecked), the
// loopback address a member connects from when one of those hosts is on
// loopback. The same settings the linter checks a certificate against.
func (n *Node) CertHosts(k CertKeys) []string {
	var hosts []string
	add := func(h string) {
		if h != "" && !isWildcard(h) && !slices.Contains(hosts, h) {
			hosts = append(hosts, h)
		}
	}
	for _, key := range append(slices.Clone(k.ClientURLs), k.Listen...) {
		v, ok := n.Get(key)
		if !ok {
			v, ok = Default(n.Role, key)
		}
		if !ok {
			continue
		}
		for _, u := range URLs(v) {
			h := URLHost(u)
			add(h)
			if k.SourceChecked {
				add(loopbackSource(h))
			}
		}
	}
	return hosts
}

// loopbackSource is the address a connection over loopback comes from
// when host is a loopback name or address, "" otherwise.
func loopbackSource(host string) string {
	if host == "localhost" {
		return "127.0.0.1"
	}
	ip := net.ParseIP(host)
	switch {
	case ip == nil || !ip.IsLoopback():
		return ""
	case ip.To4() == nil:
		return "::1"
	}
	return "127.0.0.1"
}

// SuppliedBy are the certificates of role r whose files follow the
// managed certificate from.
func SuppliedBy(r Role, from Supplier) []CertKeys {
	var out []CertKeys
	for _, k := range certKeys[r] {
		if k.From == from {
			out = append(out, k)
		}
	}
	return out
}
