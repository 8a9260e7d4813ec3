// Package rotate keeps managed certificates valid: it plans renewals, asks an
// Issuer for a candidate, validates it, installs it atomically and announces
// the change on a Bus that consumers (Sensu config writer, service actions,
// proxy listeners) subscribe to. rotate never imports a consumer: the flow is
// config → plan → issue → validate → install → notify.
package rotate
