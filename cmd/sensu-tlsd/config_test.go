package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestConfigValidateNamesFileLineAndSuggestion(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "tlsd.yml")
	writeTestFile(t, bad, "state-dir: /x\ncertificates:\n  - name: a\n    profile: backend\n    cert_file: /a.pem\n")
	r := run(t, "", nil, "config", "validate", bad)
	if r.code == 0 || !strings.Contains(r.stderr, bad+`:5: unknown key "certificates[0].cert_file": did you mean "cert-file"?`) {
		t.Errorf("config validate: exit %d\n%s", r.code, r.stderr)
	}
	_, good := writeGuideConfig(t)
	r = mustRun(t, "", nil, "config", "validate", good)
	if !strings.Contains(r.stdout, "OK (5 certificates") {
		t.Errorf("config validate of a good file: %s", r.stdout)
	}
	r = mustRun(t, "", []string{"SENSU_TLSD_CONFIG=" + good, "SENSU_TLSD_LOG_LEVEL=debug"}, "config", "keys", "--log-format", "json")
	if !strings.Contains(r.stdout, "log-level") || !strings.Contains(r.stdout, "debug") || !regexpLine(r.stdout, "log-format", "json") {
		t.Errorf("config keys does not show env and flag values:\n%s", r.stdout)
	}
}

// regexpLine reports whether some line starts with key and ends with value.
func regexpLine(out, key, value string) bool {
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) > 0 && f[0] == key && f[len(f)-1] == value {
			return true
		}
	}
	return false
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o600); err != nil {
		t.Fatal(err)
	}
}
