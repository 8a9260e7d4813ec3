// Package rotate keeps managed certificates valid: it plans renewals, asks an
// Issuer for a candidate, validates it, installs it atomically and announces
// the change on a event.Bus that consumers (Sensu config writer, service actions,
// proxy listeners) subscribe to. rotate never imports a consumer: the flow is
// config → plan → issue → validate → install → notify.
//
// Plans resolves the config; a Manager runs one goroutine per certificate
// (timer for the next renewal, file-change notifications from internal/watch,
// capped exponential backoff after failures) and rolls back to the previous
// set when a subscriber rejects a new one, remembering the refused serial
// so it is neither installed again nor replaced at once by another. Issuers sit side by side:
// local-ca (rotate/ca), acme (certmagic), exec (an external command) and
// files (another tool renews; rotate only follows). What the daemon last
// did per certificate is persisted and read back with ReadState.
package rotate
