// Package packaging holds no code: its tests build the .deb, the .rpm and
// the Sensu asset from packaging/nfpm.yaml and the Makefile, then install
// the .deb with dpkg into a real systemd booted in a private namespace.
package packaging
