#!/bin/sh
# Daemon idle cost: CPU over a minute and RSS with N managed certificates
# (default 100), each issued by the local CA at start and then left alone.
# Usage: bench/daemon-idle.sh [N] [SECONDS]   (run from the module root)
set -eu
n=${1:-100}
secs=${2:-60}
work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
go build -o "$work/sensu-tlsd" ./cmd/sensu-tlsd
{
  printf 'state-dir: %s/state\nmetrics-address: 127.0.0.1:0\nca:\n  create: true\ncertificates:\n' "$work"
  i=1
  while [ "$i" -le "$n" ]; do
    printf '  - name: node-%d\n    profile: backend\n    hosts: [node-%d.example.com, 10.0.%d.%d]\n' "$i" "$i" $((i / 250)) $((i % 250 + 1))
    i=$((i + 1))
  done
} >"$work/tlsd.yml"
"$work/sensu-tlsd" run --config "$work/tlsd.yml" 2>"$work/log" &
pid=$!
until [ "$(grep -c 'certificate changed' "$work/log" || true)" -ge "$n" ]; do
  kill -0 "$pid" || { cat "$work/log"; exit 1; }
  sleep 0.5
done
sleep 5 # let start-up garbage be collected
ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
hz=$(getconf CLK_TCK)
t0=$(ticks)
sleep "$secs"
t1=$(ticks)
rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
echo "certificates:        $n"
echo "idle CPU over ${secs}s: $(( (t1 - t0) * 1000 / hz )) ms ($(( (t1 - t0) )) ticks at ${hz} Hz)"
echo "RSS:                 $(( rss / 1024 )) MiB (${rss} kB)"
