package main

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// supervisor keeps a program running as systemd's Restart=always does
// for a service whose restart is a services entry's command: each time
// the process ends it starts the next one, 50 ms later (RestartSec, so a
// failing start does not spin), and writes its pid to pidFile, where the
// entry's command finds it.
type supervisor struct {
	starts atomic.Int32 // processes started so far
}

// supervise runs the loop until the test ends, which stops the current
// process with SIGTERM. Before each start it calls ready, which returns
// false when ctx ends first; program gives the process to start.
func supervise(t *testing.T, pidFile string, ready func(ctx context.Context) bool, program func() *exec.Cmd) *supervisor {
	t.Helper()
	s := &supervisor{}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ready(ctx) {
			p := program()
			if err := p.Start(); err != nil {
				t.Errorf("supervisor: %v", err)
				return
			}
			s.starts.Add(1)
			if err := os.WriteFile(pidFile, []byte(strconv.Itoa(p.Process.Pid)), 0o644); err != nil {
				t.Errorf("supervisor: %v", err)
			}
			stop := context.AfterFunc(ctx, func() { p.Process.Signal(syscall.SIGTERM) })
			p.Wait()
			stop()
			time.Sleep(50 * time.Millisecond)
		}
	}()
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	return s
}

// unlessHeld is a supervisor's ready that waits while the file hold
// exists: a stop-command creates it to keep the service down, and the
// restart command removes it.
func unlessHeld(hold string) func(ctx context.Context) bool {
	return func(ctx context.Context) bool {
		for {
			if _, err := os.Stat(hold); errors.Is(err, fs.ErrNotExist) {
				return ctx.Err() == nil
			}
			select {
			case <-ctx.Done():
				return false
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
}

// killAndWait is the shell that ends the process whose pid is in pidFile
// and returns once it has exited, as systemctl stop does: the health gate
// of a command action starts when its command returns. between runs after
// the pid is read and before the kill: a command that releases a held
// supervisor does it there, or it could kill the process just started.
func killAndWait(pidFile, between string) string {
	return "pid=$(cat " + pidFile + "); " + between + "kill $pid 2>/dev/null; while kill -0 $pid 2>/dev/null; do sleep 0.02; done"
}
