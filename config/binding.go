package config

// validateBinding checks listener l's agent-identity, deny-file and
// target-tls, which only a listener that terminates TLS (and verifies
// client certificates) can apply; key is the listener's place in the file.
func validateBinding(l Listener, key string, bad func(key, format string, args ...any)) {
	if l.AgentIdentity != "" {
		switch {
		case l.AgentIdentity != "cn" && l.AgentIdentity != "uri":
			bad(key+".agent-identity", "%q is unknown: use cn (the certificate's CN must be Sensu-AgentName) or uri (a URI SAN sensu://NAMESPACE/AGENT must match)", l.AgentIdentity)
		case l.Mode != "terminate" && l.Mode != "dual":
			bad(key+".agent-identity", "binds the client certificates of a listener that terminates TLS; use mode terminate (or dual) in front of the backend's agent port")
		case l.ClientCA == "":
			bad(key+".agent-identity", "needs client-ca, the CA that verifies the agents' certificates")
		case l.AllowPlain:
			bad(key+".agent-identity", "refuses every client without a certificate, plaintext included; remove allow-plaintext")
		}
	}
	if l.TargetTLS && l.Mode != "terminate" && l.Mode != "dual" {
		bad(key+".target-tls", "makes terminate and dual speak TLS to their target; mode %s already does or never does. Remove target-tls", l.Mode)
	}
	if l.DenyFile != "" && l.Mode != "terminate" && l.Mode != "dual" {
		bad(key+".deny-file", "refuses TLS clients by certificate serial or agent name; use it on a listener of mode terminate or dual")
	}
}
