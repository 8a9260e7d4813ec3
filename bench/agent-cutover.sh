#!/usr/bin/env bash
# Agent cutover benchmark: one stand-in sensu-backend behind the bridge
# (sensu-tlsd run with a dual listener, ws and wss on one port) and N
# stand-in sensu-agents, each on its own "agent node" whose sensu-tlsd
# follows the cutover (agent-cutover with a pinned CA). Each agent runs
# under a supervisor loop, as systemd would run it; the restart action
# kills it and the loop starts it again on agent.yml as it is then.
#
# Steps, each measured from every agent's own log (the time from
# "agent stopping" to the next "agent connected", and keepalives that
# failed; a keepalive every 200 ms must be echoed by the backend):
#   restart   each agent restarted on ws:// once: its own reconnect time
#   switch    each agent node's sensu-tlsd starts, fetches the pinned CA,
#             switches agent.yml to wss://, restarts the agent and checks
#             /healthz
# Nodes go one after the other (on their own machines they would not share
# these cores); the other agents stay connected meanwhile, and their
# keepalives count too. The restart command returns once the old agent has
# exited, as systemctl restart does: the health gate starts when it returns.
#
# Usage: bench/agent-cutover.sh   (from the repository root; needs go, curl)
# Env:   N=10 agents   BASE=28000 first port
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-10}
BASE=${BASE:-28000}
for p in go curl openssl; do command -v "$p" >/dev/null || { echo "missing $p" >&2; exit 1; }; done

W=$(mktemp -d /tmp/sensu-tlsd-agent-bench.XXXXXX)
PIDS=()
cleanup() {
	for i in $(seq "$N"); do touch "$W/agent-$i/stop" 2>/dev/null || true; done
	for i in $(seq "$N"); do [ -f "$W/agent-$i/agent.pid" ] && kill "$(cat "$W/agent-$i/agent.pid")" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	[ -n "${KEEP:-}" ] && echo "kept $W" >&2 || rm -rf "$W"
}
trap cleanup EXIT

go build -o "$W/sensu-tlsd" ./cmd/sensu-tlsd
go build -o "$W/standin" ./internal/standin
T="$W/sensu-tlsd"
cd "$W"

# The bridge's certificate; the bridge sends its CA (ca-file) after the
# leaf, so agent nodes that pinned the CA take it from the handshake.
"$T" --state-dir pki ca init >/dev/null
"$T" --state-dir pki issue backend-1 --profile backend --hosts 127.0.0.1,localhost >/dev/null
PIN=$(openssl x509 -noout -fingerprint -sha256 -in pki/ca.pem | cut -d= -f2)

API=$BASE AGENT_PORT=$((BASE + 1)) BRIDGE=$((BASE + 2)) METRICS=$((BASE + 3))
printf 'api-listen-address: 127.0.0.1:%d\nagent-host: 127.0.0.1\nagent-port: %d\n' "$API" "$AGENT_PORT" >backend.yml
./standin -c backend.yml 2>backend.log & PIDS+=($!)
cat >bridge.yml <<CFG
state-dir: $W/bridge-state
metrics-address: 127.0.0.1:$METRICS
certificates:
  - {name: backend-1, profile: backend, issuer: files, cert-file: $W/pki/backend-1.pem,
     key-file: $W/pki/backend-1-key.pem, ca-file: $W/pki/ca.pem, trusted-ca: $W/pki/ca.pem}
listeners:
  - {name: agent-ws, mode: dual, listen: 127.0.0.1:$BRIDGE, targets: [127.0.0.1:$AGENT_PORT],
     certificate: backend-1, allow-plaintext: true, agent-headers: true}
CFG
"$T" run --config bridge.yml 2>bridge.log & PIDS+=($!)

healthy() { curl -fs "http://127.0.0.1:$((BASE + 100 + $1))/healthz" >/dev/null; }
wait_all() { # what, condition-function; up to 120 s
	for _ in $(seq 1200); do
		local ok=0
		for i in $(seq "$N"); do "$2" "$i" && ok=$((ok + 1)); done
		[ "$ok" = "$N" ] && return 0
		sleep 0.1
	done
	echo "timed out waiting for $1" >&2; exit 1
}
switched() { grep -q 'wss://' "agent-$1/agent.yml" && healthy "$1"; }
mark() { for i in $(seq "$N"); do echo "=== step $1" >>"agent-$i/agent.log"; done; }

for i in $(seq "$N"); do
	d=agent-$i; mkdir -p "$d"
	printf 'name: agent-%d\nbackend-url:\n  - "ws://127.0.0.1:%d"\napi-host: 127.0.0.1\napi-port: %d\n' "$i" "$BRIDGE" $((BASE + 100 + i)) >"$d/agent.yml"
	( while [ ! -e "$d/stop" ]; do
		./standin agent -c "$d/agent.yml" --keepalive-interval 200ms 2>>"$d/agent.log" & echo $! >"$d/agent.pid"
		wait $! || true
	done ) & PIDS+=($!)
done
wait_all "agents on ws://" healthy
sleep 1

mark restart
for i in $(seq "$N"); do
	old=$(cat "agent-$i/agent.pid")
	kill "$old"
	for _ in $(seq 600); do [ "$(cat "agent-$i/agent.pid")" != "$old" ] && healthy "$i" && break; sleep 0.05; done
done
sleep 1

mark switch
start=$(date +%s.%N)
for i in $(seq "$N"); do
	d=agent-$i
	cat >"$d/tlsd.yml" <<CFG
state-dir: $W/$d/state
metrics-address: ""
sensu: {agent-config: $W/$d/agent.yml, agent-env-files: [$W/$d/no-env-file]}
agent-cutover: {enabled: true, ca-file: $W/$d/tls/ca.pem, ca-fingerprint-sha256: "$PIN", interval: 1s}
services:
  - {name: sensu-agent, action: command,
     command: [/bin/sh, -c, 'pid=\$(cat $W/$d/agent.pid); kill \$pid 2>/dev/null; while kill -0 \$pid 2>/dev/null; do sleep 0.02; done'],
     health: {url: "http://127.0.0.1:$((BASE + 100 + i))/healthz"}}
CFG
	"$T" run --config "$d/tlsd.yml" 2>"$d/tlsd.log" & PIDS+=($!)
	for _ in $(seq 1200); do switched "$i" && break; sleep 0.05; done
done
wait_all "agents switched to wss://" switched
end=$(date +%s.%N)
sleep 1

tls=$(curl -fs "http://127.0.0.1:$METRICS/agents" | grep -c '"transport": "tls"' || true)
echo "agents: $N; all switched to wss:// in $(echo "$end - $start" | bc) s, one node after the other; at the bridge over TLS: $tls"
echo
# Per agent and step: offline = "agent connected" - "agent stopping"
# (slog time stamps, ms), and failed keepalives.
for i in $(seq "$N"); do
	awk -v agent="agent-$i" '
	function secs(line,   m, a) { match(line, /T[0-9:.]+Z/); split(substr(line, RSTART + 1, RLENGTH - 2), a, ":"); return a[1] * 3600 + a[2] * 60 + a[3] }
	/^=== step/ { step = $3 }
	/msg="agent stopping"/ { down = secs($0) }
	/msg="agent connected"/ && down { printf "%s %s %.3f\n", agent, step, secs($0) - down; down = 0 }
	/keepalive failed/ { printf "%s %s keepalive-failed\n", agent, step }' "agent-$i/agent.log"
done >offline.txt
awk '
	$3 == "keepalive-failed" { fails[$2]++; next }
	{ n[$2]++; sum[$2] += $3; if ($3 > max[$2]) max[$2] = $3; own[$1, $2] = $3; agents[$1] = 1 }
	END {
		printf "%-8s %6s %12s %12s %18s\n", "step", "agents", "mean offline", "max offline", "failed keepalives"
		for (s in n) printf "%-8s %6d %11.3fs %11.3fs %18d\n", s, n[s], sum[s] / n[s], max[s], fails[s]
		worse = 0
		for (a in agents) if (own[a, "switch"] > own[a, "restart"] + 0.25) { worse++; printf "%s offline %.3fs at the switch, %.3fs at its own restart\n", a, own[a, "switch"], own[a, "restart"] }
		printf "agents offline at the switch longer than their own reconnect time (+250 ms): %d\n", worse
	}' offline.txt
