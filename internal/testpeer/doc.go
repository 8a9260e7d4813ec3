// Package testpeer is what sensu-tlsd's tests use to reach real peers:
// NeedPeer (skip loudly, or fail under SENSU_TLSD_REQUIRE_PEERS=1, when a
// program, root or a port is missing), free loopback ports, and waits for
// a listener or a condition. Like net/http/httptest it is imported only by
// tests.
package testpeer
