package rotate

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/config"
	"github.com/sensu-tlsd/sensu-tlsd/rotate/ca"
)

// TestPlansReportsEveryBadCertificate: `config validate` promises every
// problem, so two certificates that cannot be managed are both reported,
// each with the file, the certificate, the key and the fix.
func TestPlansReportsEveryBadCertificate(t *testing.T) {
	cfg := testConfig(t, time.Hour, "")
	cfg.File = "/etc/sensu/tlsd.yml"
	cfg.Certificates[0].Owner = "no-such-user-here"
	second := cfg.Certificates[0]
	second.Name, second.Owner = "backend-2", ""
	second.CertFile, second.KeyFile = second.CertFile+".2", second.KeyFile+".2"
	second.Issuer = config.Issuer{Type: "exec", Exec: config.ExecIssuer{Command: []string{"/bin/true"}}}
	second.CAFile, second.TrustedCA = second.CAFile+".2", "/nonexistent/ca.pem"
	cfg.Certificates = append(cfg.Certificates, second)
	_, err := resolve(cfg)
	for _, want := range []string{
		`/etc/sensu/tlsd.yml: certificates[0] (backend-1): install: owner "no-such-user-here": user: unknown user no-such-user-here: create the user or fix the owner key`,
		`/etc/sensu/tlsd.yml: certificates[1] (backend-2): trusted-ca: /nonexistent/ca.pem: file does not exist: create it with the CA certificates candidates must chain to, or remove trusted-ca`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Plans: %v\nwant it to report %q", err, want)
		}
	}
}

// TestPlansMarksTheLocalCAsOwnCAFile: a local-ca certificate whose ca-file
// is the CA's ca.pem (cfssljson's layout, however the path is spelled)
// leaves that file to the CA; any other ca-file, or another issuer, is
// linked into the certificate's generations as usual.
func TestPlansMarksTheLocalCAsOwnCAFile(t *testing.T) {
	for _, issuer := range []config.Issuer{{}, {Type: "exec", Exec: config.ExecIssuer{Command: []string{"/bin/true"}}}} {
		cfg := testConfig(t, time.Hour, "")
		cfg.CA.Dir = filepath.Join(filepath.Dir(cfg.StateDir), "ca")
		own := cfg.Certificates[0]
		own.Name, own.CertFile, own.KeyFile = "own", own.CertFile+".own", own.KeyFile+".own"
		own.CAFile = filepath.Join(cfg.CA.Dir, "..", "ca", ca.CertFileName)
		own.Issuer = issuer
		cfg.Certificates = append(cfg.Certificates, own)
		want := map[string]bool{"backend-1": false, "own": issuer.Type == ""}
		for _, p := range mustPlans(t, cfg) {
			if p.Paths.CASource != want[p.Name] {
				t.Errorf("%s (issuer %q): ca-file %s: CASource %v, want %v", p.Name, issuer.Type, p.Paths.CA, p.Paths.CASource, want[p.Name])
			}
		}
	}
}
