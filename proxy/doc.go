// Package proxy terminates and originates TLS in front of Sensu listeners
// that speak plaintext, so a fleet can move to wss/https without losing an
// agent and a backend certificate can rotate without a backend restart.
//
// A Server accepts TCP connections and hands each to its Mode: terminate
// (TLS in, plaintext out), originate (plaintext in, TLS out) or dual (one
// port, the first byte decides). After the handshake the bytes are relayed
// untouched in both directions. The relay holds no buffer while a
// connection is idle: it waits for readability on the socket itself and
// borrows a pooled buffer only to move data, which is what keeps an idle
// agent websocket cheap.
//
// Certificates come from a CertSource; FileSource re-reads its files when
// they change on disk or when rotate publishes a Change, so new handshakes
// use the new pair while open sessions continue.
package proxy
