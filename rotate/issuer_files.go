package rotate

import (
	"context"
	"errors"
	"log/slog"

	"github.com/sensu-tlsd/sensu-tlsd/internal/pki"
	"github.com/sensu-tlsd/sensu-tlsd/rotate/install"
)

// filesIssuer is for sets another tool renews (certbot, a config manager):
// "issuing" re-reads what that tool last wrote.
type filesIssuer struct{}

func (filesIssuer) Issue(_ context.Context, p Plan, _ string, _ *slog.Logger) (install.Set, error) {
	return followedFiles{paths: p.Paths}.ReadConfigured()
}

// followedFiles is the store for files another tool owns: sensu-tlsd never
// writes them, so installing is a no-op and there is nothing to roll back to.
type followedFiles struct{ paths install.Paths }

func (f followedFiles) ReadConfigured() (install.Set, error) {
	var s install.Set
	var err error
	if s.Cert, err = readFile(f.paths.Cert, pki.MaxPEMFileBytes, "a PEM certificate chain"); err != nil {
		return s, err
	}
	if s.Key, err = readFile(f.paths.Key, pki.MaxKeyFileBytes, "a PEM private key"); err != nil {
		return s, err
	}
	s.CA, err = readFile(f.paths.CA, pki.MaxPEMFileBytes, "a PEM CA bundle")
	return s, err
}

func (followedFiles) Install(install.Set) (int, error) { return 0, nil }
func (followedFiles) Current() (int, error)            { return 0, nil }
func (followedFiles) Recover() error                   { return nil }
func (followedFiles) Owned() bool                      { return false }

func (followedFiles) ReadGeneration(int) (install.Set, error) {
	return install.Set{}, errors.New("issuer type files: another tool owns these files, sensu-tlsd keeps no generations of them")
}

func (followedFiles) Rollback(install.Set) (int, error) {
	return 0, errors.New("issuer type files: another tool owns these files, sensu-tlsd cannot roll them back")
}
