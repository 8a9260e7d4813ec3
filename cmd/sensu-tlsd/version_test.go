package main

import (
	"strings"
	"testing"
)

func TestVersionCommand(t *testing.T) {
	r := mustRun(t, "", nil, "version")
	if !strings.HasPrefix(r.stdout, "sensu-tlsd ") {
		t.Fatalf("version printed %q, want it to start with %q", r.stdout, "sensu-tlsd ")
	}
}
