package rotate

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/sensu-tlsd/sensu-tlsd/rotate/install"
)

// Issuer produces a candidate certificate set for a plan. Implementations
// sit side by side (local-ca, acme, exec, files, enrol); none of them installs
// anything: the manager validates every candidate before it touches the
// configured paths, because an issuer may return anything.
type Issuer interface {
	// Issue returns a new set for p. stage is an empty private directory
	// the issuer may use for files; it is removed afterwards. log is the
	// certificate's log, for what the operator must hear of (a CA made).
	Issue(ctx context.Context, p Plan, stage string, log *slog.Logger) (install.Set, error)
}

// store is where a validated set goes: the atomic installer for sets
// sensu-tlsd owns, or nowhere for files another tool renews.
type store interface {
	Install(install.Set) (int, error)
	Rollback(to install.Set) (int, error)
	Current() (int, error)
	ReadConfigured() (install.Set, error)
	ReadGeneration(gen int) (install.Set, error)
	Recover() error
	// Owned reports whether sensu-tlsd writes the files. When another
	// tool does, nothing is installed, rolled back or put back, and only
	// that tool moves the certificate on.
	Owned() bool
}

// installed is the store for sets sensu-tlsd owns.
type installed struct{ *install.Installer }

func (installed) Owned() bool { return true }

// newIssuer returns the issuer the plan names, checking its settings.
func newIssuer(p Plan) (Issuer, error) {
	switch p.Issuer.Type {
	case "", "local-ca":
		return localCAIssuer{}, nil
	case "exec":
		return newExecIssuer(p.Issuer.Exec)
	case "files":
		return filesIssuer{}, nil
	case "acme":
		return newACMEIssuer(p)
	case "enrol":
		return newEnrolIssuer(p)
	default:
		return nil, fmt.Errorf("type %q is not one of local-ca, acme, exec, files, enrol", p.Issuer.Type)
	}
}

// newStore returns where sets for p are installed.
func newStore(p Plan) (store, error) {
	if p.Issuer.Type == "files" {
		return followedFiles{paths: p.Paths}, nil
	}
	in, err := install.New(p.Dir, p.Paths, p.Keep, p.Perms)
	if err != nil {
		return nil, err
	}
	return installed{in}, nil
}
