package main

import (
	"strings"
	"testing"
)

func TestHelpListsEveryCommandAndCompletionWorks(t *testing.T) {
	r := mustRun(t, "", nil, "--help")
	for _, c := range []string{"ca ", "check ", "completion ", "config ", "issue ", "status ", "version "} {
		if !strings.Contains(r.stdout, "  "+c) {
			t.Errorf("--help lacks command %q", c)
		}
	}
	if r := mustRun(t, "", nil, "completion", "bash"); !strings.Contains(r.stdout, "sensu-tlsd") {
		t.Errorf("completion bash printed no script")
	}
}
