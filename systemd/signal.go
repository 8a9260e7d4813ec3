package systemd

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// signals are the names an operator may configure. The list is short on
// purpose: these are the signals daemons use for reload and rotation.
var signals = map[string]syscall.Signal{
	"HUP": syscall.SIGHUP, "INT": syscall.SIGINT, "QUIT": syscall.SIGQUIT,
	"TERM": syscall.SIGTERM, "USR1": syscall.SIGUSR1, "USR2": syscall.SIGUSR2,
}

// ParseSignal reads "HUP", "SIGHUP" or "hup".
func ParseSignal(name string) (syscall.Signal, error) {
	n := strings.TrimPrefix(strings.ToUpper(strings.TrimSpace(name)), "SIG")
	if s, ok := signals[n]; ok {
		return s, nil
	}
	return 0, fmt.Errorf("unknown signal %q (want one of HUP, INT, QUIT, TERM, USR1, USR2)", name)
}

func signalName(s syscall.Signal) string {
	for n, v := range signals {
		if v == s {
			return "SIG" + n
		}
	}
	return strconv.Itoa(int(s))
}

// PIDSignal sends a signal to a process named by pid file (read at each
// action, since a restarted daemon has a new pid) or by a fixed PID.
type PIDSignal struct {
	PIDFile string
	PID     int
	Signal  syscall.Signal
}

func (a PIDSignal) String() string {
	if a.PIDFile != "" {
		return fmt.Sprintf("signal %s to pid in %s", signalName(a.Signal), a.PIDFile)
	}
	return fmt.Sprintf("signal %s to pid %d", signalName(a.Signal), a.PID)
}

// Run signals the process.
func (a PIDSignal) Run(context.Context, Batch) (Outcome, error) {
	pid := a.PID
	if a.PIDFile != "" {
		b, err := os.ReadFile(a.PIDFile)
		if err != nil {
			return Outcome{}, fmt.Errorf("%s: %w", a, err)
		}
		if pid, err = ParsePID(b); err != nil {
			return Outcome{}, fmt.Errorf("pid-file %s: %w", a.PIDFile, err)
		}
	}
	if err := syscall.Kill(pid, a.Signal); err != nil {
		return Outcome{}, fmt.Errorf("%s: %w", a, err)
	}
	return Outcome{Acted: true, Detail: a.String()}, nil
}

// ParsePID reads a pid file's content: one positive decimal number,
// surrounding white space allowed. 0, 1 and negative numbers are refused:
// kill(2) would signal a process group or init.
func ParsePID(b []byte) (int, error) {
	s := strings.TrimSpace(string(b))
	pid, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("content %q is not a process id", truncate(s, 32))
	}
	if pid <= 1 {
		return 0, fmt.Errorf("process id %d refused (must be greater than 1)", pid)
	}
	return pid, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
