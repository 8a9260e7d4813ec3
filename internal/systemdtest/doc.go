// Package systemdtest holds test support for sensu-tlsd's tests: NeedPeer
// (skip loudly, or fail in CI, when a real peer is missing), a throw-away
// CA that writes certificate sets, free loopback ports, the built stand-in
// backend, and a real systemd booted as PID 1 in a private namespace. Like
// net/http/httptest it is imported only by tests.
package systemdtest
