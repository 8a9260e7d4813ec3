package systemd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// Command runs a program (an argument list, never a shell string) with
// the change described in its environment (see Batch.Env).
type Command struct {
	Service string
	Args    []string
	Timeout time.Duration // 0: 1 minute
}

func (a Command) String() string { return "command " + strings.Join(a.Args, " ") }

// Run runs the command and fails on a non-zero exit or the timeout; the
// first part of its output goes into the error.
func (a Command) Run(ctx context.Context, b Batch) (Outcome, error) {
	if len(a.Args) == 0 {
		return Outcome{}, errors.New("command action without a command")
	}
	timeout := a.Timeout
	if timeout <= 0 {
		timeout = time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, a.Args[0], a.Args[1:]...)
	cmd.Env = append(os.Environ(), b.Env(a.Service)...)
	cmd.WaitDelay = 2 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() == context.DeadlineExceeded {
		return Outcome{}, fmt.Errorf("%s: timed out after %s; output: %s", a, timeout, truncate(out.String(), 512))
	}
	if err != nil {
		return Outcome{}, fmt.Errorf("%s: %w; output: %s", a, err, truncate(out.String(), 512))
	}
	return Outcome{Acted: true, Detail: a.String()}, nil
}
