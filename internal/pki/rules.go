package pki

import (
	"fmt"
	"net"
	"os"
	"strings"
)

// CheckKeyMode is the one rule for private key file modes, shared by the
// config, the CA's file writer and the inventory so they say the same: no
// access at all for users outside the owner and the file's group, since on
// a shared host that is a leaked (or replaceable) key.
func CheckKeyMode(mode os.FileMode) error {
	if perm := mode.Perm(); perm&0o007 != 0 {
		return fmt.Errorf("mode %04o gives every user on the machine access to the private key: use 0600, or 0640 with a group", perm)
	}
	return nil
}

// CheckHost accepts what a certificate can name as a SAN: an IP address or
// a DNS name (letters, digits and hyphens per label, an optional leading
// "*." wildcard), so a typo such as "bad host!" fails before anything is
// signed.
func CheckHost(host string) error {
	if net.ParseIP(host) != nil {
		return nil
	}
	name := strings.TrimPrefix(host, "*.")
	ok := name != "" && len(name) <= 253
	for _, label := range strings.Split(name, ".") {
		ok = ok && validLabel(label)
	}
	if !ok {
		return fmt.Errorf("host %q is neither an IP address nor a DNS name (letters, digits and hyphens, dot-separated, e.g. backend-1.example.com or 10.0.0.5)", host)
	}
	return nil
}

func validLabel(l string) bool {
	if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for _, r := range l {
		if !(r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return false
		}
	}
	return true
}

// TightenKeyMode puts right a key file sensu-tlsd owns (an installed key,
// its CA's key): when CheckKeyMode refuses its mode, it becomes want. It
// returns the mode found, and whether it changed it.
func TightenKeyMode(path string, want os.FileMode) (os.FileMode, bool, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, false, err
	}
	found := fi.Mode().Perm()
	if CheckKeyMode(found) == nil {
		return found, false, nil
	}
	if err := os.Chmod(path, want.Perm()); err != nil {
		return found, false, fmt.Errorf("%s: %v; changing it to %04o: %w", path, CheckKeyMode(found), want.Perm(), err)
	}
	return found, true, nil
}
