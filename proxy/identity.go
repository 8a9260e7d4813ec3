package proxy

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/sensu-tlsd/sensu-tlsd/internal/pki"
)

// AgentIdentity is how a listener binds a client certificate to the Sensu
// agent it claims to be in its websocket upgrade request. The backend's
// own Basic auth still decides what the agent may do; the binding decides
// which name a certificate may connect under, so a shared agent password
// no longer lets one agent speak for another.
type AgentIdentity string

const (
	// IdentityNone binds nothing: any verified certificate may claim any name.
	IdentityNone AgentIdentity = ""
	// IdentityCN: the certificate's common name must equal Sensu-AgentName,
	// in any namespace (the name the guide's agent profile already uses).
	IdentityCN AgentIdentity = "cn"
	// IdentityURI: one of the certificate's URI SANs must be
	// sensu://NAMESPACE/NAME, binding Sensu-Namespace as well as
	// Sensu-AgentName.
	IdentityURI AgentIdentity = "uri"
)

// ParseAgentIdentity checks a configured agent-identity value.
func ParseAgentIdentity(s string) (AgentIdentity, error) {
	switch id := AgentIdentity(s); id {
	case IdentityNone, IdentityCN, IdentityURI:
		return id, nil
	}
	return "", fmt.Errorf("agent-identity %q is unknown; use cn (the certificate's CN must be Sensu-AgentName) or uri "+
		"(a URI SAN sensu://NAMESPACE/NAME must match Sensu-Namespace and Sensu-AgentName)", s)
}

// ErrAgentIdentity is the refusal of an agent whose upgrade request claims
// a name (or namespace) its client certificate is not bound to, or that
// sent no agent upgrade at all on a binding listener.
var ErrAgentIdentity = errors.New("agent identity does not match its client certificate")

// identityError says why one agent was refused, for its 403 and the log.
type identityError struct {
	reason string
}

func (e *identityError) Error() string { return e.reason }
func (e *identityError) Unwrap() error { return ErrAgentIdentity }

// check binds leaf to the agent h claims to be.
func (id AgentIdentity) check(leaf *x509.Certificate, h AgentHello) error {
	if leaf == nil {
		return &identityError{"no client certificate: this port binds each agent to its certificate"}
	}
	switch id {
	case IdentityCN:
		if leaf.Subject.CommonName != h.Name {
			return &identityError{fmt.Sprintf("certificate CN %q may not connect as agent %q", leaf.Subject.CommonName, h.Name)}
		}
	case IdentityURI:
		var got []string
		for _, u := range leaf.URIs {
			ns, name, err := agentFromURI(u)
			if err != nil {
				continue
			}
			if ns == h.Namespace && name == h.Name {
				return nil
			}
			got = append(got, u.String())
		}
		if len(got) == 0 {
			return &identityError{fmt.Sprintf("certificate %q has no sensu://NAMESPACE/AGENT URI SAN; it may not connect as agent %s/%s",
				leaf.Subject.CommonName, h.Namespace, h.Name)}
		}
		return &identityError{fmt.Sprintf("certificate for %s may not connect as agent %s", strings.Join(got, ", "), AgentURI(h.Namespace, h.Name))}
	}
	return nil
}

// AgentURI is the URI SAN that binds a certificate to agent name in
// namespace under agent-identity uri.
func AgentURI(namespace, name string) string { return pki.AgentURI(namespace, name) }

// agentFromURI accepts exactly sensu://NAMESPACE/AGENT: no user, port,
// query, fragment or escapes, one path segment, and names Sensu would
// accept in a header. The scheme may be in any case (RFC 3986 §3.1);
// url.Parse has lowered it already.
func agentFromURI(u *url.URL) (namespace, name string, err error) {
	bad := func(why string) (string, string, error) {
		return "", "", fmt.Errorf("agent URI %q %s; the form is sensu://NAMESPACE/AGENT", truncate(u.String()), why)
	}
	switch {
	case u.Scheme != "sensu":
		return bad("is not of scheme sensu")
	case u.Opaque != "" || u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || u.RawFragment != "":
		return bad("has parts other than a namespace and an agent")
	case u.Port() != "" || strings.Contains(u.Host, ":"):
		return bad("has a port")
	case u.RawPath != "" || strings.Contains(u.Host, "%"):
		return bad("has escaped characters")
	}
	name, ok := strings.CutPrefix(u.Path, "/")
	switch {
	case !ok || name == "" || strings.Contains(name, "/"):
		return bad("does not name one agent")
	case !validAgentName(u.Host):
		return bad("has no valid namespace")
	case !validAgentName(name):
		return bad("has no valid agent name")
	}
	return u.Host, name, nil
}

// validAgentName is a name a binding can compare: printable ASCII without
// spaces or slashes, as Sensu's own names are.
func validAgentName(s string) bool {
	return s != "" && printable(s) && !strings.ContainsAny(s, " /")
}
