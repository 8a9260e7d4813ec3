// Package daemon is `sensu-tlsd run`: it runs the certificate manager, the
// metrics endpoint, the systemd watchdog and any extra services (proxy
// listeners) as one errgroup, reloads the config on SIGHUP without ever
// half-applying a broken one, and shuts down gracefully on SIGTERM/SIGINT.
package daemon
