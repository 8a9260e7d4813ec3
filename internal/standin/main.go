package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	run := runBackend
	args := os.Args[1:]
	if len(args) > 0 && args[0] == "agent" {
		run, args = runAgent, args[1:]
	}
	if err := run(ctx, args, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "standin:", err)
		os.Exit(exitCode(err))
	}
}

// exitCode is 2 for a usage or config error, 3 for a deliberate failure and
// 1 for anything else, so a test can tell them apart in the unit status.
func exitCode(err error) int {
	switch err.(type) {
	case usageError:
		return 2
	case deliberateFailure:
		return 3
	case diedOnHUP:
		return 129
	}
	return 1
}

type usageError struct{ error }
type deliberateFailure struct{ error }
