package logging

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// JournalStreamEnv is the variable systemd sets for a unit whose stdout or
// stderr is connected to the journal: "DEVICE:INODE" of that stream.
const JournalStreamEnv = "JOURNAL_STREAM"

// New returns the logger the config asks for, on w, at level.
func New(w *os.File, format string, level slog.Leveler) *slog.Logger {
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
	}
	if ToJournal(w, os.Getenv(JournalStreamEnv)) {
		return slog.New(NewJournalHandler(w, level))
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

// ToJournal reports whether f is the stream journalStream (the value of
// JOURNAL_STREAM) names. Comparing device and inode, as sd_journal_stream
// does, keeps a child that inherited the variable but writes to a pipe or
// a file from adding journal prefixes there.
func ToJournal(f *os.File, journalStream string) bool {
	if journalStream == "" {
		return false
	}
	var dev, ino uint64
	if _, err := fmt.Sscanf(journalStream, "%d:%d", &dev, &ino); err != nil {
		return false
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return false
	}
	return uint64(st.Dev) == dev && st.Ino == ino
}

// NewJournalHandler is slog's text handler without the time, each record
// prefixed with its syslog priority for journald.
func NewJournalHandler(w io.Writer, level slog.Leveler) slog.Handler {
	return slog.NewTextHandler(&priorityWriter{w: w}, &slog.HandlerOptions{
		Level: level,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{} // journald stamps every line itself
			}
			return a
		},
	})
}

// priorityWriter turns the leading "level=X " the text handler writes
// (first, once the time is gone) into "<N>". The text handler hands it one
// whole record per Write, so a record and its prefix are never split.
type priorityWriter struct {
	mu  sync.Mutex
	w   io.Writer
	buf []byte
}

func (p *priorityWriter) Write(rec []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf = append(p.buf[:0], rec...)
	if rest, ok := bytes.CutPrefix(rec, []byte("level=")); ok {
		token, tail, _ := bytes.Cut(rest, []byte(" "))
		p.buf = append(append(p.buf[:0], priority(string(token))...), tail...)
	}
	if _, err := p.w.Write(p.buf); err != nil {
		return 0, err
	}
	return len(rec), nil
}

// priority maps slog's level names, including offsets such as "INFO+2",
// to syslog priorities: err, warning, info, debug.
func priority(level string) string {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return "<6>"
	}
	switch {
	case l >= slog.LevelError:
		return "<3>"
	case l >= slog.LevelWarn:
		return "<4>"
	case l >= slog.LevelInfo:
		return "<6>"
	}
	return "<7>"
}
