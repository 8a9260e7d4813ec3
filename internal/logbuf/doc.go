// Package logbuf is a log destination that tests read while the code under
// test writes to it from its own goroutines. Like net/http/httptest it is
// imported only by tests.
package logbuf
