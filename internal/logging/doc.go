// Package logging builds the daemon's slog logger: JSON for log shippers
// (log-format: json), text otherwise. When stderr is systemd's journal
// stream (JOURNAL_STREAM names it), text records carry no timestamp, which
// journald adds itself, and start with the sd-daemon priority prefix
// ("<3>" error, "<4>" warning, "<6>" info, "<7>" debug) instead of
// level=, so `journalctl -p warning` filters them.
package logging
