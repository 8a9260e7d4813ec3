// Package reload is the one protocol by which parts of the daemon follow a
// configuration reload: each part prepares the new configuration once (the
// only step that may refuse it), and then every part commits what it
// prepared or every part aborts it, so a configuration one part cannot
// take is never half-applied and nothing is built twice.
package reload
