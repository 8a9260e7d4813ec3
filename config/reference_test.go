package config

import (
	"bytes"
	"flag"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite docs/config.md from config/reference.go")

// TestReferenceIsCurrent: docs/config.md is what WriteReference (and so
// `sensu-tlsd config keys --markdown`) writes now; -update rewrites it.
func TestReferenceIsCurrent(t *testing.T) {
	var want bytes.Buffer
	if err := WriteReference(&want); err != nil {
		t.Fatal(err)
	}
	const file = "../docs/config.md"
	if *update {
		if err := os.WriteFile(file, want.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v: generate it with go test ./config -run TestReferenceIsCurrent -update", err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("docs/config.md is stale: regenerate it with go test ./config -run TestReferenceIsCurrent -update (or sensu-tlsd config keys --markdown > docs/config.md)")
	}
}

// TestEveryKeyHasOneMeaning: each key of Config, list entries included,
// has a description, and every description belongs to a key, so a new or
// renamed key cannot reach docs/config.md without its meaning.
func TestEveryKeyHasOneMeaning(t *testing.T) {
	seen := map[string]bool{}
	for _, k := range reference() {
		seen[k.Path] = true
		if k.Meaning == "" {
			t.Errorf("key %s has no description: add one to descriptions in config/reference.go", k.Path)
		}
		if strings.Contains(k.Meaning, "\n") {
			t.Errorf("key %s: the description is more than one line", k.Path)
		}
	}
	for path := range descriptions {
		if !seen[path] {
			t.Errorf("descriptions has %s, which is no key of Config: remove or rename it", path)
		}
	}
	for _, k := range Keys() {
		if !seen[k.Path] {
			t.Errorf("config keys lists %s, the reference does not", k.Path)
		}
	}
}

// TestReferenceShowsTheDefaultsApplied: defaults come from ApplyDefaults,
// list entries' too, in the form a config would write them.
func TestReferenceShowsTheDefaultsApplied(t *testing.T) {
	want := map[string]string{
		"renewal.jitter":                       "10m",
		"defaults.lifetime":                    "90d",
		"defaults.key-mode":                    `"0600"`,
		"certificates[].cert-file":             DefaultStateDir + "/NAME.pem",
		"certificates[].issuer.type":           IssuerLocalCA,
		"certificates[].issuer.acme.challenge": "http-01",
		"certificates[].issuer.exec.timeout":   "2m",
		"certificates[].name":                  "",
		"service-actions.coalesce":             "10s",
	}
	for _, k := range reference() {
		if w, ok := want[k.Path]; ok && k.Default != w {
			t.Errorf("%s: default %q, want %q", k.Path, k.Default, w)
		}
	}
}
