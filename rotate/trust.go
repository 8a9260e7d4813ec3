package rotate

import (
	"github.com/sensu-tlsd/sensu-tlsd/internal/pki"
)

// logCAChange says loudly that a new set brings another CA bundle: every
// peer verifying this certificate must trust the new CA, and without a
// trusted-ca nothing but the candidate itself vouched for it.
func (r *runner) logCAChange(oldCA, newCA []byte) {
	describe := func(b []byte) string {
		cas, err := pki.ParseCertificatesPEM(b)
		if err != nil {
			return "unreadable: " + err.Error()
		}
		return pki.CANames(cas)
	}
	if r.plan.TrustedCA == "" {
		r.log.Warn("CA bundle changed, and no trusted-ca pins it: the new set was only checked against the bundle it came with; set trusted-ca to the CA it must chain to",
			"ca_file", r.plan.Paths.CA, "old_ca", describe(oldCA), "new_ca", describe(newCA))
		return
	}
	r.log.Warn("CA bundle changed; the new set chains to trusted-ca",
		"ca_file", r.plan.Paths.CA, "old_ca", describe(oldCA), "new_ca", describe(newCA), "trusted_ca", r.plan.TrustedCA)
}
