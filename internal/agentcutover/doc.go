// Package agentcutover lets an agent node follow the TLS cutover by
// itself. While agent.yml (with the environment files its unit loads, read
// through config/sensu) still sends sensu-agent to ws:// backends, the
// Follower probes every backend in backend-url with TLS. Once each one
// presents a certificate that verifies against the agent's CA bundle and
// covers the host agent.yml names, it switches every backend-url to wss://
// (all members kept) and sets trusted-ca-file through config/sensu's
// editor (a backup is kept), restarts sensu-agent through a systemd
// service action (a restart, never a signal: sensu-agent dies on SIGHUP),
// and waits for the agent's /healthz to say it is connected again. If it
// does not, the previous files go back, sensu-agent restarts on them, and
// the switch is tried again after the interval.
//
// The CA bundle is a file configuration management placed, or, when the
// operator pinned its SHA-256 fingerprint, the CA certificate the
// backends present in their chain, taken only when it matches the pin: no
// trust on first use. A wrong pin is refused with the fingerprints seen
// and the one expected.
//
// What the follower last saw and did is in STATE-DIR/agent-cutover.json,
// which `sensu-tlsd status` shows.
package agentcutover
