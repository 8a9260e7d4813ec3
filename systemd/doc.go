// Package systemd makes services pick up new certificates. It talks to
// systemd (sd_notify readiness and watchdog; unit jobs over D-Bus), sends
// signals, runs commands, and holds the hardened sensu-tlsd.service unit
// and the polkit rule for a non-root sensu-tlsd.
//
// The Dispatcher is a event.Subscriber. For each Change it finds the
// services the certificate names, lets changes that arrive together join
// one Batch per service, asks the service's Trigger whether the batch
// concerns it (the sensu-backend preset knows which backend.yml keys need
// a restart and that etcd re-reads its files by itself), runs its Action
// (UnitJob, UnitSignal, PIDSignal, Command or None) and waits for its
// Health checks to see the new serial. An error means the service did not
// come back; the publisher rolls back and publishes a ReasonRollback
// change, which goes through the same path against the old serial.
package systemd
