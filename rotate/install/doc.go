// Package install puts a certificate set (cert, key, CA bundle) on disk as
// one atomic step, the way Kubernetes' atomic writer does: every set lives
// in its own generation directory, a `current` symlink is swapped with
// rename(2), and the configured paths are symlinks into `current`. A reader
// therefore sees the whole old set or the whole new set, never a new cert
// with an old key, even if the process is killed mid-install. Links in a
// directory are made under a flock of that directory, so sets that share a
// file there (the guide's one ca.pem) can be installed concurrently, by one
// process or several.
package install
