// Package testca is the one certificate generator of sensu-tlsd's tests: a
// throw-away CA that issues leaves (in memory, as a tls.Certificate, or as
// a certificate set written to disk), self-signed certificates for the
// tests that need one, and Corpus, the bad certificates every entry point
// of the gate must refuse. Like net/http/httptest it is imported only by
// tests; where a test means to prove interoperability it uses the real
// openssl or cfssl instead.
package testca
