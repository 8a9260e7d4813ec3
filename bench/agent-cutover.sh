#!/usr/bin/env bash
# Agent cutover benchmark: one stand-in sensu-backend behind the bridge
# (sensu-tlsd run with a dual listener, ws and wss on one port) and N
# stand-in sensu-agents, each on its own "agent node" whose sensu-tlsd
# follows the cutover (agent-cutover with a pinned CA). Each agent runs
# under a supervisor loop, as systemd would run it (50 ms RestartSec); the
# restart action kills it and the loop starts it again on agent.yml as it
# is then.
#
# Steps, each measured from every agent's own log (offline: from "agent
# stopping", a failed keepalive or "agent disconnected" to the next "agent
# connected"; and keepalives that failed; a keepalive every 200 ms must be
# echoed by the backend):
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
# Env:   N=10 agents   BASE=28000 first port   KEEP=1 keeps the work dir
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."
bench_init agent 28000 openssl

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

for i in $(seq "$N"); do
	d=agent-$i; mkdir -p "$d"
	printf 'name: agent-%d\nbackend-url:\n  - "ws://127.0.0.1:%d"\napi-host: 127.0.0.1\napi-port: %d\n' "$i" "$BRIDGE" $((BASE + 100 + i)) >"$d/agent.yml"
	supervise "$d" agent ./standin agent -c "$d/agent.yml" --keepalive-interval 200ms
done
wait_all "agents on ws://" healthy
sleep 1

mark restart
restart_agents
sleep 1

for i in $(seq "$N"); do
	d=agent-$i
	cat >"$d/tlsd.yml" <<CFG
state-dir: $W/$d/state
metrics-address: ""
sensu: {agent-config: $W/$d/agent.yml, agent-env-files: [$W/$d/no-env-file]}
agent-cutover: {enabled: true, ca-file: $W/$d/tls/ca.pem, ca-fingerprint-sha256: "$PIN", interval: 1s}
services:
  - {name: sensu-agent, action: command, command: $(restart_cmd "$W/$d" agent),
     health: {url: "http://127.0.0.1:$((BASE + 100 + i))/healthz"}}
CFG
done
mark switch
start=$(date +%s.%N)
switch
end=$(date +%s.%N)
sleep 1

tls=$(curl -fs "http://127.0.0.1:$METRICS/agents" | grep -c '"transport": "tls"' || true)
echo "agents: $N; all switched to wss:// in $(echo "$end - $start" | bc) s, one node after the other; at the bridge over TLS: $tls"
echo
offline_times >offline.txt
awk '
	$3 == "keepalive-failed" || $3 == "closed-by-backend" { fails[$2]++; next }
	$3 == "disconnected" { next }
	{ n[$2]++; sum[$2] += $3; if ($3 > max[$2]) max[$2] = $3; own[$1, $2] = $3; agents[$1] = 1 }
	END {
		printf "%-8s %6s %12s %12s %18s\n", "step", "agents", "mean offline", "max offline", "failed keepalives"
		for (s in n) printf "%-8s %6d %11.3fs %11.3fs %18d\n", s, n[s], sum[s] / n[s], max[s], fails[s]
		worse = 0
		for (a in agents) if (own[a, "switch"] > own[a, "restart"] + 0.25) { worse++; printf "%s offline %.3fs at the switch, %.3fs at its own restart\n", a, own[a, "switch"], own[a, "restart"] }
		printf "agents offline at the switch longer than their own reconnect time (+250 ms): %d\n", worse
	}' offline.txt
