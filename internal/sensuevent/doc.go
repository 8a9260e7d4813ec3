// Package sensuevent puts the daemon's findings where Sensu operators look:
// it posts Sensu events to the local agent's events API (POST
// http://127.0.0.1:3031/events), which adds the agent's entity and sends
// them through the backend's handlers, without a scheduled check.
//
// A Reporter follows each managed certificate's state file (what `status`
// reads) through internal/watch and turns it into one check per
// certificate, sensu-tlsd-renewal-NAME: WARNING while renewals fail,
// CRITICAL when a candidate or a replacement was refused or a service
// failed its health gate on the new set, and OK once the certificate
// recovers. The output uses the words of `status`; the event's metrics
// carry the expiry and the failure count. Reading the state file rather
// than hooking the renewal engine keeps rotate free of consumers, and
// catches what a `sensu-tlsd renew` in another process did too.
//
// A Poster delivers them. Send never blocks: events wait in a map keyed by
// check name, so a newer status replaces one not yet delivered and the
// queue cannot grow. Failed posts are counted in
// sensu_tlsd_event_post_failures_total and retried with the latest status.
package sensuevent
