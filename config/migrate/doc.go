// Package migrate walks one Sensu node from plaintext to TLS in reversible
// phases, so a fleet moves without losing an agent:
//
//  1. bridge: the backend's API, agent and dashboard listeners move to
//     loopback ports (public port + 10000); sensu-tlsd's proxy takes the
//     public ports in dual mode (TLS, and plaintext while allowed), from
//     listeners written to a drop-in file under the state dir
//     (STATE-DIR/listeners.d/migrate-bridge.yml, read with LoadDropIns);
//  2. agents: agent.yml switches every backend-url to wss:// and trusts the CA;
//  3. native: the backend serves TLS itself (cert-file, key-file, etcd
//     https, peer TLS), its listeners return to the public addresses and the
//     drop-in is removed, ending the bridge;
//  4. enforce: etcd requires client certificates on client and peer ports,
//     and agents authenticate by certificate when agent mTLS is chosen
//     (commercial backends only).
//
// Each phase edits files through package sensu (byte-preserving, verified,
// linted: a phase that would add a lint error is refused, and Plan shows
// that refusal) and keeps the bytes every file had before it under
// STATE-DIR/migrate/phase-N/, so a rollback restores them exactly; a file
// edited since its phase wrote it is not rolled back unless forced.
// Applying the phase a node is already at again changes nothing (or
// repairs drift), with the choices it was first applied with (the bridge's
// --refuse-plaintext is kept in the state). Files are written only after
// every new content has been computed and checked.
package migrate
