// Package systemdtest boots a real systemd as PID 1 of a private PID and
// mount namespace for sensu-tlsd's tests, installs units into it and runs
// systemctl there. Like net/http/httptest it is imported only by tests.
package systemdtest
