package proxy

import (
	"time"
)

// refusalLogInterval is the least time between two log lines about
// refused client certificates on one listener: a fleet of agents with a
// stale certificate retrying would otherwise flood the journal.
const refusalLogInterval = 10 * time.Second

// mTLSRefusals are the handshake reasons that are a client certificate
// refused: what an operator rotating a client CA or allow-list must see.
var mTLSRefusals = map[string]bool{
	"no-client-certificate":  true,
	"bad-client-certificate": true,
	"client-not-allowed":     true,
}
