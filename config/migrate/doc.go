// Package migrate walks one Sensu node from plaintext to TLS in reversible
// phases, so a fleet moves without losing an agent. Each phase is defined
// by what it does, and a node walks only the phases that change something
// on it (Phases; the others are skipped, never required):
//
//  1. bridge (backends): the backend's API and agent listeners (and the
//     dashboard, on the commercial build, the only one that serves it)
//     move to loopback ports (BridgePorts, DefaultBridgePorts below the
//     ephemeral range); sensu-tlsd's proxy takes the public ports in dual
//     mode (TLS, and plaintext while allowed), from listeners written to a
//     drop-in under the state dir (STATE-DIR/listeners.d/migrate-bridge.yml,
//     read with LoadDropIns); on a cluster member etcd also gets the peer
//     trio with its peer URLs still http, so it can dial the members that
//     reach phase 3 before it;
//  2. agents (agents): agent.yml switches every backend-url to wss:// and
//     trusts the CA;
//  3. native (backends): the backend serves TLS itself and refuses
//     plaintext, etcd serves https and requires client certificates on its
//     client and peer ports (etcd-trusted-ca-file implies it; the phase
//     writes etcd-client-cert-auth to say so), its listeners return to the
//     public addresses and the drop-in is removed, ending the bridge;
//  4. enforce: agents authenticate by certificate (the commercial
//     backend's agent-auth-*, each agent's cert-file) where agent mTLS is
//     chosen; no effect on the open-source build. enforcementOf is the one
//     description of phase 4 per build.
//
// Each phase edits files through package sensu (byte-preserving, verified,
// linted: a phase that would add a lint error is refused, and Plan shows
// that refusal) and keeps the bytes every file had before it under
// STATE-DIR/migrate/phase-N/, so a rollback restores them exactly; a file
// edited since its phase wrote it is not rolled back unless forced.
// Applying the phase a node is already at again changes nothing (or
// repairs drift), with the choices it was first applied with (the bridge's
// --refuse-plaintext and ports are kept in the state). Files are written
// only after every new content has been computed and checked.
//
// After writing, Apply and Rollback make the processes take the files
// through Services (SystemdServices: the daemon's dispatcher, its presets'
// restarts and health gates, and a reload of sensu-tlsd gated on its proxy
// holding or releasing the public ports), in the order that keeps every
// port free before a process binds it (stepsFor); a failed gate rolls the
// phase back. Without Services the steps are only listed (--print-only).
//
// A step that ends plaintext (phase 3, or a bridge that starts refusing
// it) first asks an AgentSightings which agents the bridges saw, and is
// refused while any was last seen in plaintext unless cut off on purpose.
// LocalAgents asks this node's daemon (/agents); a source with every
// cluster member's sightings implements the same interface.
package migrate
