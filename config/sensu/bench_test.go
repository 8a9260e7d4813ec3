package sensu

import (
	"os"
	"testing"
)

// BenchmarkApplyBackendTLS measures one regeneration of the packaged
// backend.yml: parse, edit every owned key, patch, verify.
func BenchmarkApplyBackendTLS(b *testing.B) {
	src, err := os.ReadFile("testdata/backend-packaged.yml")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		d, err := Parse("backend.yml", src)
		if err != nil {
			b.Fatal(err)
		}
		ApplyBackendTLS(d, testCerts)
		if _, err := d.Bytes(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLintPackagedAgent measures linting the packaged agent.yml.
func BenchmarkLintPackagedAgent(b *testing.B) {
	src, err := os.ReadFile("testdata/agent-packaged.yml")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		d, err := Parse("agent.yml", src)
		if err != nil {
			b.Fatal(err)
		}
		Lint(d, Agent, LintOptions{User: "root"})
	}
}
