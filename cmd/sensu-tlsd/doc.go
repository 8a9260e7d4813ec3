// Command sensu-tlsd keeps Sensu Go's TLS certificates valid and its configs
// pointing at them. This package only wires: logic lives in config, rotate,
// proxy and systemd.
package main
