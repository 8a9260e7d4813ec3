// Package systemd makes services pick up new certificates. It talks to
// systemd (sd_notify readiness and watchdog; unit jobs over D-Bus), sends
// signals, runs commands, and holds the hardened sensu-tlsd.service unit
// and the polkit rule for a non-root sensu-tlsd. What is Sensu's (its
// units, the actions that never reload its certificates, its listeners and
// health endpoints) comes from config/sensu; this package knows how to run
// services and probe them.
//
// The Dispatcher is a event.Subscriber. For each Change it finds the
// services the certificate names, lets changes that arrive together join
// one Batch per service, asks the service's Trigger whether the batch
// concerns it (the sensu-backend preset asks config/sensu what
// sensu-backend reads, from backend.yml and its environment files, and
// which of those files it reads only at start), runs its Action
// (UnitJob, UnitSignal, PIDSignal, Command or None) and waits for its
// Health checks to see the new serial. An error means the service did not
// come back; the publisher rolls back and publishes a ReasonRollback
// change, which goes through the same path against the old serial.
package systemd
