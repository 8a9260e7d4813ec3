package testca

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/sensu-tlsd/sensu-tlsd/internal/pki"
)

// Each class of the corpus is refused by the gate for its own reason,
// while a leaf of the same CA for the same hosts is admitted.
func TestCorpusIsRefusedByTheGateForItsReason(t *testing.T) {
	ca := New(t)
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	WriteFile(t, caFile, ca.PEM, 0o644)
	admit := func(i Issued) error {
		cf, kf := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
		i.Write(t, cf, kf)
		s, err := pki.LoadSet(cf, kf, caFile)
		if err != nil {
			return err
		}
		return pki.Admit(s, pki.Policy{Profile: pki.Server, Hosts: []string{"localhost"}})
	}
	if err := admit(ca.Issue(t, Leaf{CN: "localhost", Hosts: []string{"localhost"}})); err != nil {
		t.Fatalf("a good leaf: %v", err)
	}
	for _, bad := range Corpus(t, ca, []string{"localhost"}) {
		if err := admit(bad.Issued); err == nil || !strings.Contains(err.Error(), bad.Reason) || !strings.Contains(err.Error(), bad.Fix) {
			t.Errorf("%s: %v, want %q and %q", bad.Name, err, bad.Reason, bad.Fix)
		}
	}
}
