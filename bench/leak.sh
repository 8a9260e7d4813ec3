#!/usr/bin/env bash
# Leak check: about a million short connections through one sensu-tlsd
# proxy (terminate, agent headers on), a quarter each closed cleanly,
# failing their handshake (plaintext on the TLS port), reset after the
# websocket upgrade, and reset in the middle of the ClientHello. It reads
# the proxy's descriptors (/proc/PID/fd), goroutines (go_goroutines on its
# /metrics) and RSS before and after, and fails when descriptors or
# goroutines did not come back. A benchmark, not a timed test.
# Usage: bench/leak.sh            (from the repository root; needs openssl and curl)
# Env:   N=1000000  CONC=16
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-1000000}
CONC=${CONC:-16}
for p in openssl curl; do command -v "$p" >/dev/null || { echo "missing $p: apt-get install -y openssl curl" >&2; exit 1; }; done

W=$(mktemp -d /tmp/sensu-tlsd-leak.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT

go build -o "$W/sensu-tlsd" ./cmd/sensu-tlsd
go build -o "$W/loadclient" ./bench/loadclient
cd "$W"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca-key.pem -out ca.pem -subj /CN=leak-ca -days 2 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout srv-key.pem -out srv.csr -subj /CN=localhost 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >srv.ext
openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -out srv.pem -days 1 -extfile srv.ext 2>/dev/null

BACKEND=127.0.0.1:18190 PROXY=127.0.0.1:18191 METRICS=127.0.0.1:18192
wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/${1%:*}/${1#*:}") 2>/dev/null && return 0; sleep 0.1; done; echo "nothing listens on $1" >&2; return 1; }
"$W/loadclient" -mode backend -addr $BACKEND >/dev/null & PIDS+=($!)
"$W/sensu-tlsd" proxy --mode terminate --listen $PROXY --target $BACKEND --agent-headers \
	--cert srv.pem --key srv-key.pem --metrics-address $METRICS --log-level error >/dev/null & PID=$!; PIDS+=($PID)
wait_port $BACKEND; wait_port $PROXY; wait_port $METRICS

metric() { curl -fsS "http://$METRICS/metrics" | awk -v m="$1" '$1==m {print $2}'; }
fds() { ls "/proc/$PID/fd" | wc -l; }
rss_kb() { awk '/^VmRSS/{print $2}' "/proc/$PID/status"; }
settle() { # until no connection is open and the goroutines stop falling
	for _ in $(seq 300); do
		[ "$(metric 'sensu_tlsd_proxy_connections_open{listener="proxy"}')" = 0 ] && break; sleep 0.1
	done
	sleep 3
}
sources=127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5,127.0.0.6,127.0.0.7,127.0.0.8,127.0.0.9

# Warm-up: every kind of ending once and more, so lazily created things
# (the parking lot's epoll set, pools, the session ticket key) are in the baseline.
"$W/loadclient" -mode churn -addr $PROXY -ca ca.pem -n 4000 -c "$CONC" -sources $sources >/dev/null
settle
fd0=$(fds) g0=$(metric go_goroutines) r0=$(rss_kb)
echo "before: fds=$fd0 goroutines=$g0 rss=${r0}kB" >&2

out=$("$W/loadclient" -mode churn -addr $PROXY -ca ca.pem -n "$N" -c "$CONC" -sources $sources)
echo "churn: $out" >&2
settle
fd1=$(fds) g1=$(metric go_goroutines) r1=$(rss_kb)
total=$(metric 'sensu_tlsd_proxy_connections_total{listener="proxy",transport="tls"}')
hsfail=$(curl -fsS "http://$METRICS/metrics" | awk '$1 ~ /^sensu_tlsd_proxy_handshake_failures_total/ {s+=$2} END{print s+0}')
echo "after:  fds=$fd1 goroutines=$g1 rss=${r1}kB"
echo "$out"
echo "proxy counted: tls sessions relayed=$total handshake failures=$hsfail"
printf '| connections | fds before → after | goroutines before → after | RSS before → after |\n|---|---|---|---|\n'
printf '| %s | %s → %s | %s → %s | %s → %s kB |\n' "$N" "$fd0" "$fd1" "$g0" "$g1" "$r0" "$r1"
if [ "$fd1" -gt "$fd0" ] || [ "$g1" -gt $((g0 + 2)) ]; then
	echo "LEAK: descriptors or goroutines did not come back" >&2
	exit 1
fi
echo "no leak"
