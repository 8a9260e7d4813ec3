// Package certstate is the state file the daemon keeps for each
// certificate (STATE-DIR/certs/NAME/state.json): what it last did, the
// serial consumers refused, when it renews next. The renewal engine writes
// it; status, check and the daemon's Sensu events read it, so they need
// not link the engine.
package certstate
