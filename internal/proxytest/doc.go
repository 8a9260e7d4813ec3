// Package proxytest is test support for the proxy, shared by its unit
// tests and the integration tests of the built binary: a loopback address
// that behaves like a cluster member that is powered off. Like
// net/http/httptest it is imported only by tests.
package proxytest
