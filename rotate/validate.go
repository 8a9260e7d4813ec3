package rotate

import (
	"fmt"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/internal/pki"
	"github.com/sensu-tlsd/sensu-tlsd/rotate/install"
)

// parseSet turns PEM bytes into a pki.Set; files name where the bytes came
// from (or would go), for messages.
func parseSet(s install.Set, files install.Paths) (*pki.Set, error) {
	chain, err := pki.ParseCertificatesPEM(s.Cert)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", files.Cert, err)
	}
	key, err := pki.ParsePrivateKeyPEM(s.Key)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", files.Key, err)
	}
	cas, err := pki.ParseCertificatesPEM(s.CA)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", files.CA, err)
	}
	return &pki.Set{Chain: chain, Key: key, CA: cas, CertFile: files.Cert, KeyFile: files.Key, CAFile: files.CA}, nil
}

// validate parses s and runs every check of p's policy on it: a set that
// fails is never installed and never announced.
func validate(s install.Set, p Plan, now time.Time) (*pki.Set, error) {
	ps, err := parseSet(s, p.Paths)
	if err != nil {
		return nil, err
	}
	pol, err := p.Policy(now)
	if err != nil {
		return nil, err
	}
	if err := pki.Validate(ps, pol); err != nil {
		return nil, err
	}
	return ps, nil
}
