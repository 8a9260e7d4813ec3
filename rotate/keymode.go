package rotate

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/sensu-tlsd/sensu-tlsd/config"
	"github.com/sensu-tlsd/sensu-tlsd/internal/pki"
	"github.com/sensu-tlsd/sensu-tlsd/rotate/ca"
)

// keepKeyModes applies pki.CheckKeyMode to the private keys this
// certificate uses. What sensu-tlsd owns (the installed key, the local
// CA's key) it puts right and says so; a key another tool writes (issuer
// files) it only warns about, since changing it would fight that tool.
// status and check report a bad mode either way.
func (r *runner) keepKeyModes() {
	if _, followed := r.store.(followedFiles); followed {
		fi, err := os.Stat(r.plan.Paths.Key)
		if err != nil {
			return // a missing key is the set's own error
		}
		if err := pki.CheckKeyMode(fi.Mode()); err != nil {
			r.log.Warn("the private key another tool wrote is readable by every user; sensu-tlsd does not own it (issuer files), so it is left as it is",
				"key", r.plan.Paths.Key, "error", err.Error(),
				"fix", fmt.Sprintf("have the tool that writes it use mode 0600 (or 0640 with a group), or run chmod 0600 %s", r.plan.Paths.Key))
		}
		return
	}
	want := r.plan.Perms.KeyMode
	if want == 0 {
		want = 0o600
	}
	r.tighten(r.plan.Paths.Key, want, "installed key")
	if r.plan.Issuer.Type == config.IssuerLocalCA || r.plan.Issuer.Type == "" {
		r.tighten(filepath.Join(r.plan.CADir, ca.KeyFileName), 0o600, "local CA key")
	}
}

// tighten puts a key file sensu-tlsd owns back to want when its mode is
// refused, and logs what it changed.
func (r *runner) tighten(path string, want os.FileMode, what string) {
	found, changed, err := pki.TightenKeyMode(path, want)
	switch {
	case err != nil && !os.IsNotExist(err):
		r.log.Error("the "+what+" is readable by every user and its mode could not be changed", "key", path, "error", err)
	case changed:
		r.log.Warn("the "+what+" was readable by every user; sensu-tlsd owns it and changed its mode",
			"key", path, "old_mode", fmt.Sprintf("%04o", found), "new_mode", fmt.Sprintf("%04o", want.Perm()))
	}
}
