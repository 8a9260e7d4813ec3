#!/bin/sh
# Rolling cutover of a real three-member etcd (Debian's etcd-server) to
# https peers and back, member by member, by the code path the CLI runs
# (migrate edits each backend.yml, cluster.SwitchMember moves the stored
# peer URLs under the restart lock and restarts the member). A probe writes
# through every member every 10 ms; each step prints how long it took and
# the longest stretch without an accepted write through the members not
# being switched, and through any member.
# Usage: bench/cluster-cutover.sh [RUNS]   (run from the module root)
set -eu
runs=${1:-3}
command -v etcd >/dev/null || { echo "etcd not on PATH (apt-get install etcd-server)" >&2; exit 1; }
go test -count="$runs" -run '^TestRollingPeerCutoverAndRollbackKeepWritesFlowing$' -v ./internal/cluster |
  grep -E 'step [0-9]+|cutover_test.go|^(--- |ok|FAIL)' | sed 's/^ *cutover_test.go:[0-9]*: //'
