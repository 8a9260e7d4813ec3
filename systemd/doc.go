// Package systemd makes services pick up new certificates: it talks to
// systemd (sd_notify readiness and watchdog, unit jobs over D-Bus), sends
// signals and runs commands, and holds the hardened sensu-tlsd.service unit.
package systemd
