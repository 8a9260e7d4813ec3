#!/usr/bin/env bash
# Fleet cutover benchmark: one backend node and N agent nodes taken through
# every `migrate apply` phase and every rollback by the built binary, as an
# operator would, with no systemd: services are `command` and `signal`
# actions. The backend node is a stand-in sensu-backend run by a supervisor
# loop that reads backend.yml at each start (as systemd would run it) and a
# sensu-tlsd daemon with the config migrate reads: the backend certificate,
# backend.yml, a sensu-backend service whose command restarts the stand-in
# and returns once the old process has exited (the health gate starts when
# the command returns), and a services entry that reloads the daemon with
# SIGHUP (migrate --tlsd-service). Each agent node is a stand-in
# sensu-agent (a keepalive every 200 ms that the backend must echo) under
# its own supervisor loop, and a sensu-tlsd daemon following the cutover
# (agent-cutover with the CA's pinned SHA-256, taken from the bridge's
# handshake: the bridge sends its certificate's CA after the leaf).
#
# Steps, each marked in every agent's log and measured from it (offline:
# from "agent stopping", a failed keepalive or "agent disconnected" to the
# next "agent connected"; and the keepalives that failed):
#   restart    each agent restarted on ws:// once: its own reconnect time
#   backend-restart
#              the backend restarted once by its own service command, no
#              migrate: what any sensu-backend restart costs its agents
#   phase1     backend node: migrate apply --phase 1 (backend restarted onto
#              loopback, then the proxy takes the public ports, ws and wss)
#   switch     each agent node's follower switches agent.yml to wss:// and
#              restarts its agent, one node after the other
#   phase2     each agent node: migrate apply --phase 2
#   phase3     backend node: migrate apply --phase 3 (the proxy lets go of
#              the public ports, the backend restarts onto them with TLS)
#   phase4     backend node: migrate apply --phase 4 (the open-source build
#              without agent certificates: refused, it does not apply)
#   rollback3  backend node: migrate rollback, 3 -> 1 (backend back onto
#              loopback, the proxy takes the public ports again)
#   rollback2  each agent node: its follower stopped, migrate rollback, the
#              ws:// agent.yml put back from the follower's backup and the
#              agent restarted (at phase 0 nothing serves TLS: a wss:// agent
#              would be cut off for good)
#   rollback1  backend node: migrate rollback, 1 -> 0 (the proxy lets go,
#              the backend restarts onto the public ports in plaintext)
#
# The last column compares each agent with itself: at a step that only
# touches agents, with its own restart; at a step that restarts the backend,
# with the plain backend restart.
#
# Usage: bench/fleet-cutover.sh   (from the repository root; needs go, curl, openssl)
# Env:   N=10 agents   BASE=29000 first port   KEEP=1 keeps the work dir
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."
bench_init fleet 29000 openssl

API=$BASE AGENT_PORT=$((BASE + 1)) METRICS=$((BASE + 2)) LOOP_API=$((BASE + 3)) LOOP_AGENT=$((BASE + 4))
B=$W/backend
mkdir -p "$B"
printf 'api-listen-address: 127.0.0.1:%d\nagent-host: 127.0.0.1\nagent-port: %d\n' "$API" "$AGENT_PORT" >"$B/backend.yml"
cat >"$B/tlsd.yml" <<CFG
state-dir: $B/state
metrics-address: 127.0.0.1:$METRICS
certificates:
  - {name: backend, profile: backend, hosts: [localhost, 127.0.0.1]}
sensu: {backend-config: $B/backend.yml, backend-certificate: backend}
services:
  - {name: sensu-backend, preset: sensu-backend, action: command, command: $(restart_cmd "$B" backend), health: {timeout: 20s}}
  - {name: sensu-tlsd, action: signal, signal: HUP, pid-file: $B/tlsd.pid, health: {url: "http://127.0.0.1:$METRICS/healthz"}}
CFG
"$T" --config "$B/tlsd.yml" ca init >/dev/null
"$T" --config "$B/tlsd.yml" issue --all >/dev/null

supervise "$B" backend ./standin -c "$B/backend.yml"
"$T" run --config "$B/tlsd.yml" 2>"$B/tlsd.log" & echo $! >"$B/tlsd.pid"; PIDS+=($!)

m() { "$T" --config "$B/tlsd.yml" migrate "$@" --user root --tlsd-service sensu-tlsd >>migrate.log 2>&1 || { echo "migrate $* failed:" >&2; tail -20 migrate.log >&2; exit 1; }; }
wait_backend() { for _ in $(seq 400); do curl -fsk "$1/health" >/dev/null && return 0; sleep 0.05; done; echo "backend not up at $1" >&2; exit 1; }
wait_backend "http://127.0.0.1:$API"
PIN=$(openssl x509 -noout -fingerprint -sha256 -in "$B/state/ca.pem" | cut -d= -f2)

for i in $(seq "$N"); do agent_node "$i" "ws://127.0.0.1:$AGENT_PORT"; done
wait_all "agents on ws://" healthy
sleep 1

mark restart
restart_agents
sleep 1

mark backend-restart
sh -c "$(restart_sh "$B" backend)"
wait_backend "http://127.0.0.1:$API"
wait_all "agents back on ws:// after the backend restart" healthy
sleep 1.5

declare -A SECS
step() { # name, then the command; its time goes to SECS
	mark "$1"; local s; s=$(date +%s.%N)
	"${@:2}"
	SECS[$1]=$(echo "$(date +%s.%N) - $s" | bc)
	sleep 1.5
}
ports=(--bridge-api-port "$LOOP_API" --bridge-agent-port "$LOOP_AGENT")
step phase1 m apply --phase 1 "${ports[@]}"
wait_all "agents back through the bridge" on_ws

step switch switch

agent_phase() { for i in $(seq "$N"); do "$T" --config "agent-$i/tlsd.yml" migrate "$@" --user root >>migrate.log 2>&1; done; }
step phase2 agent_phase apply --phase 2
wait_all "agents on wss://" on_wss

# The last plaintext sighting is from before the switch: sightings older
# than the window no longer hold phase 3 back.
sleep 2
step phase3 m apply --phase 3 --plaintext-window 3s
wait_all "agents on wss:// to the backend itself" on_wss
step phase4 sh -c "! $T --config $B/tlsd.yml migrate apply --phase 4 --user root >>migrate.log 2>&1"
step rollback3 m rollback
wait_all "agents on wss:// through the bridge" on_wss

step rollback2 switch_back
step rollback1 m rollback
wait_all "agents on ws:// to the backend itself" on_ws
mark end

echo "agents: $N; migrate's own output: $W/migrate.log (KEEP=1 keeps it)"
for s in phase1 switch phase2 phase3 phase4 rollback3 rollback2 rollback1; do printf '%-10s %6.2f s\n' "$s" "${SECS[$s]}"; done
echo
offline_times >offline.txt
awk -v order="restart backend-restart phase1 switch phase2 phase3 phase4 rollback3 rollback2 rollback1" '
	$3 == "keepalive-failed" || $3 == "closed-by-backend" { fails[$2]++; next }
	$3 == "disconnected" { disc[$2]++; next }
	{ k = $1 SUBSEP $2; t[k] += $3; if (!(k in seen)) { seen[k] = 1; n[$2]++ } agents[$1] = 1 }
	END {
		split("backend-restart phase1 phase3 rollback3 rollback1", b, " ")
		for (j in b) base[b[j]] = "backend-restart"
		printf "%-15s %6s %12s %12s %18s %16s %18s\n", "step", "agents", "mean offline", "max offline", "failed keepalives", "failed connects", "offline > base"
		ns = split(order, steps, " ")
		for (j = 1; j <= ns; j++) {
			s = steps[j]; sum = 0; max = 0; worse = 0
			for (a in agents) if ((a, s) in seen) {
				sum += t[a, s]; if (t[a, s] > max) max = t[a, s]
				ref = (s in base) ? base[s] : "restart"
				if (s != ref && t[a, s] > t[a, ref] + 0.25) worse++
			}
			# A dropped session logs one "disconnected" after its failed
			# keepalive; each further one is a reconnect attempt refused.
			if (n[s]) printf "%-15s %6d %11.3fs %11.3fs %18d %16d %18d\n", s, n[s], sum / n[s], max, fails[s], disc[s] - fails[s], worse
			else printf "%-15s %6d %12s %12s %18d %16d %18d\n", s, 0, "-", "-", fails[s], disc[s] - fails[s], 0
		}
	}' offline.txt
