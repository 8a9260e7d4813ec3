// Package proxy terminates and originates TLS in front of Sensu listeners
// that speak plaintext, so a fleet can move to wss/https without losing an
// agent and a backend certificate can rotate without a backend restart.
package proxy
