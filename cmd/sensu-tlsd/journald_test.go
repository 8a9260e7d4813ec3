package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestJournalLogFormat runs the daemon with stderr on a stream that
// JOURNAL_STREAM names, as systemd does for a unit: every line starts
// with a syslog priority and carries no timestamp (journald adds its
// own). The same stream without the variable keeps slog's text format.
func TestJournalLogFormat(t *testing.T) {
	for _, journal := range []bool{true, false} {
		t.Run(fmt.Sprintf("JOURNAL_STREAM set %v", journal), func(t *testing.T) {
			dir := t.TempDir()
			cfg := daemonConfig(t, dir, "1h", "10m", "")
			stderr, err := os.Create(filepath.Join(dir, "stderr"))
			if err != nil {
				t.Fatal(err)
			}
			defer stderr.Close()
			var st syscall.Stat_t
			if err := syscall.Fstat(int(stderr.Fd()), &st); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(binPath, "run", "--config", cfg)
			cmd.Env = cleanEnv()
			if journal {
				cmd.Env = append(cmd.Env, fmt.Sprintf("JOURNAL_STREAM=%d:%d", st.Dev, st.Ino))
			}
			cmd.Stderr = stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Wait()
			defer cmd.Process.Signal(syscall.SIGTERM)
			var log string
			for deadline := time.Now().Add(30 * time.Second); !strings.Contains(log, "certificate changed"); {
				if time.Now().After(deadline) {
					t.Fatalf("the daemon did not log a certificate change within 30s:\n%s", log)
				}
				time.Sleep(50 * time.Millisecond)
				b, _ := os.ReadFile(stderr.Name())
				log = string(b)
			}
			for _, line := range strings.Split(strings.TrimSpace(log), "\n") {
				if journal {
					if !strings.HasPrefix(line, "<6>msg=") && !strings.HasPrefix(line, "<4>msg=") || strings.Contains(line, "time=") || strings.Contains(line, "level=") {
						t.Errorf("journal line %q: want <N>msg=... without time= or level=", line)
					}
				} else if !strings.HasPrefix(line, "time=") || !strings.Contains(line, " level=") {
					t.Errorf("plain text line %q: want time=... level=...", line)
				}
			}
		})
	}
}
