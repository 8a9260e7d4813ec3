// Package proxy terminates and originates TLS in front of Sensu listeners
// that speak plaintext, so a fleet can move to wss/https without losing an
// agent and a backend certificate can rotate without a backend restart.
//
// A Server accepts TCP connections and hands each to its Mode: Terminate
// (TLS in, plaintext out), Originate (plaintext in, TLS out, targets tried
// in order or spread, each with its own dial timeout, a failed one skipped
// for a while) or Dual (one port; the first byte tells a ClientHello from
// an HTTP request). After the handshake the bytes are relayed untouched in
// both directions, half-closes included; with AgentHeaders the first HTTP
// request is read (and replayed to the target) to learn which Sensu agent
// came in over which transport.
//
// The relay is built for many idle agent sessions. Each direction runs
// inside one RawConn.Read callback and borrows a pooled buffer only while
// bytes move; a connection idle for ParkAfter gives up both goroutines to
// a process-wide epoll set (parkingLot) and gets fresh ones when data
// arrives. An idle session then costs its TLS state and sockets only.
//
// Certificates come from a CertSource; FileSource re-reads its files when
// they change on disk or when rotate publishes a Change, so new handshakes
// use the new pair while open sessions continue. Build turns one Spec (a
// config.Listener or the `sensu-tlsd proxy` flags) into a Server, refusing
// settings that would do nothing in its mode. Listeners runs the daemon's
// listeners and keeps them in step with the config across reloads: a
// listener whose name, mode and address stay is updated in place
// (Server.Update) and keeps the sessions its new settings still admit.
//
// On the agent port a listener can bind each agent's client certificate to
// the agent its websocket upgrade names (Options.Identity: CN, or a URI
// SAN sensu://NAMESPACE/AGENT) and refuse listed serials and agents
// (DenyList); a refused agent gets a 403 before any byte reaches the
// target, and a changed deny list closes the sessions it now refuses.
package proxy
