// Package standintest runs the stand-in sensu-backend (internal/standin)
// for tests: it builds it (through internal/testbin, so a package that
// uses it returns testbin.Main from its TestMain), writes its backend.yml,
// starts it, and writes the systemd unit that runs it. Like
// net/http/httptest it is imported only by tests.
package standintest
