#!/usr/bin/env bash
# Cluster agent cutover benchmark: a three-member Sensu backend cluster and
# N agents taken through every `migrate apply` phase, member by member, and
# every rollback, by the built binary, with no systemd.
#
# Each member is one stand-in sensu-backend running a real etcd (Debian's
# etcd-server) as its embedded etcd from backend.yml's etcd-* keys
# (standin --etcd; the layout and 2.5x election timeouts of
# internal/etcdtest), restarted as a whole by a supervisor loop that reads
# backend.yml at each start, as systemd would run it. Its sensu-tlsd daemon
# has the config migrate reads: the backend and etcd-peer certificates of
# one CA, a sensu-backend service whose command restarts the stand-in and
# returns once the old process has exited (the health gate starts when it
# returns) and whose stop-command holds the supervisor and returns once the
# stand-in has exited (phase 3 and its rollback stop the member while etcd
# moves its peer URLs), and a service that reloads the daemon with SIGHUP
# (migrate --tlsd-service). Each agent is a stand-in sensu-agent (a
# keepalive every 200 ms that its backend must echo) whose backend-url
# lists all three members' public agent ports; it connects to them in turn
# and to the next one after a failure. Each agent node has a sensu-tlsd
# following the cutover (agent-cutover, CA placed by configuration
# management).
#
# Every agent lists the members in the same order, so each step on a
# member moves the agents it serves to the next one; an agent whose backend
# was the last of its list waits a second before it starts over (the
# stand-in agent's pause after a pass through backend-url), which shows in
# the steps on member 3.
#
# Steps, each marked in every agent's log and measured from it (offline:
# from "agent stopping", a failed keepalive or "agent disconnected" to the
# next "agent connected"; and the keepalives that failed):
#   restart       each agent restarted on ws:// once: its own reconnect time
#   p1-bN         member N: migrate apply --phase 1 (its backend restarts
#                 onto loopback under the cluster's restart lock, then its
#                 proxy takes the public ports, ws and wss)
#   switch        each agent node's follower switches agent.yml to wss://
#                 (once every member serves TLS) and restarts its agent
#   p2-agents     each agent node: migrate apply --phase 2
#   p2-bN, p4-bN  member N: refused, the phase does not apply to a backend
#                 (phase 4 has no effect on the open-source build)
#   p3-bN         member N: migrate apply --phase 3 (the proxy lets go of
#                 the public ports; the member stops, etcd moves its peer
#                 URLs to https, it starts serving TLS itself)
#   rb3-bN        member N (3, 2, 1): migrate rollback 3 -> 1 (stopped,
#                 peer URLs back to http, onto loopback behind the proxy)
#   rb2-agents    each agent node: follower stopped, migrate rollback, the
#                 ws:// agent.yml put back from the follower's backup
#   rb1-bN        member N (3, 2, 1): migrate rollback 1 -> 0
# A keepalive that fails because the backend closed the connection with a
# close frame ("backend shutting down": it restarts) counts as closed; any
# other failure (no echo, reset, timeout) as a failed keepalive. A write
# probe puts a key through the members every 100 ms (the next
# member when one refuses); each step reports the longest stretch in which
# no member accepted a write.
#
# Usage: bench/cluster-agents.sh   (from the repository root; needs go, curl, etcd)
# Env:   N=10 agents   BASE=30000 first port   KEEP=1 keeps the work dir
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."
command -v etcd >/dev/null || { echo "missing etcd (apt-get install etcd-server)" >&2; exit 1; }
ETCD=$(command -v etcd)
bench_init cluster 30000

# One CA for the cluster: every member serves the backend certificate and
# peers with the etcd-peer one (both for 127.0.0.1 and localhost).
"$T" --state-dir pki ca init >/dev/null
"$T" --state-dir pki issue backend --profile backend --hosts 127.0.0.1,localhost >/dev/null
"$T" --state-dir pki issue peer --profile etcd-peer --hosts 127.0.0.1,localhost >/dev/null

# Member i's ports: BASE+10i + 0 etcd client, 1 etcd peer, 2 API, 3 agent,
# 4 daemon metrics, 5 and 6 the bridge's loopback API and agent ports.
port() { echo $((BASE + 10 * $1 + $2)); }
initial=""
for i in 1 2 3; do initial+="${initial:+,}backend-$i=http://127.0.0.1:$(port "$i" 1)"; done

for i in 1 2 3; do
	B=$W/backend-$i
	mkdir -p "$B"
	cat >"$B/backend.yml" <<CFG
---
# Sensu backend $i of 3 (see the clustering guide), on loopback
state-dir: "$B/sensu"

## etcd cluster
etcd-name: "backend-$i"
etcd-listen-client-urls: "http://127.0.0.1:$(port "$i" 0)"
etcd-advertise-client-urls: "http://127.0.0.1:$(port "$i" 0)"
etcd-listen-peer-urls: "http://127.0.0.1:$(port "$i" 1)"
etcd-initial-advertise-peer-urls: "http://127.0.0.1:$(port "$i" 1)"
etcd-initial-cluster: "$initial"
etcd-initial-cluster-state: "new"
etcd-initial-cluster-token: "sensu"
etcd-election-timeout: 2500
etcd-heartbeat-interval: 250

## api
api-listen-address: "127.0.0.1:$(port "$i" 2)"
api-url: "http://127.0.0.1:$(port "$i" 2)"
agent-host: "127.0.0.1"
agent-port: $(port "$i" 3)
CFG
	cat >"$B/tlsd.yml" <<CFG
state-dir: $B/state
metrics-address: 127.0.0.1:$(port "$i" 4)
certificates:
  - {name: backend, profile: backend, issuer: files, cert-file: $W/pki/backend.pem, key-file: $W/pki/backend-key.pem,
     ca-file: $W/pki/ca.pem, trusted-ca: $W/pki/ca.pem}
  - {name: peer, profile: etcd-peer, issuer: files, cert-file: $W/pki/peer.pem, key-file: $W/pki/peer-key.pem,
     ca-file: $W/pki/ca.pem, trusted-ca: $W/pki/ca.pem}
sensu: {backend-config: $B/backend.yml, backend-certificate: backend, etcd-peer-certificate: peer}
services:
  - {name: sensu-backend, preset: sensu-backend, action: command, command: $(restart_cmd "$B" backend),
     stop-command: $(stop_cmd "$B" backend), health: {timeout: 60s}}
  - {name: sensu-tlsd, action: signal, signal: HUP, pid-file: $B/tlsd.pid, health: {url: "http://127.0.0.1:$(port "$i" 4)/healthz"}}
CFG
	supervise "$B" backend ./standin -c "$B/backend.yml" --etcd "$ETCD"
done
member_up() { # i: its backend answers /health, over TLS or not
	local u; u=$(sed -n 's/^api-url: "\(.*\)"$/\1/p' "backend-$1/backend.yml")
	curl -fsk --max-time 1 "${u:-http://127.0.0.1:$(port "$1" 2)}/health" >/dev/null
}
for _ in $(seq 1200); do member_up 1 && member_up 2 && member_up 3 && break; sleep 0.1; done
member_up 1 && member_up 2 && member_up 3 || { echo "the cluster did not come up:" >&2; tail -5 backend-*/backend.log backend-*/sensu/etcd.log >&2; exit 1; }
for i in 1 2 3; do
	"$T" run --config "backend-$i/tlsd.yml" 2>"backend-$i/tlsd.log" & echo $! >"backend-$i/tlsd.pid"; PIDS+=($!)
done
for _ in $(seq 600); do
	ok=0; for i in 1 2 3; do curl -fs "http://127.0.0.1:$(port "$i" 4)/healthz" >/dev/null && ok=$((ok + 1)); done
	[ "$ok" = 3 ] && break; sleep 0.1
done

# The write probe: a put through member k's client URL as backend.yml
# gives it now (https with the backend's etcd client certificate from
# phase 3 on), the next member when k refuses.
probe() {
	local k=1 n u
	while [ ! -e stop ]; do
		for n in 0 1 2; do
			u=$(grep -o 'etcd-advertise-client-urls: *"*[a-z]*://[0-9.:]*' "backend-$k/backend.yml" | grep -o '[a-z]*://.*') || true
			k=$((k % 3 + 1))
			if curl -fs --max-time 0.5 --cacert pki/ca.pem --cert pki/backend.pem --key pki/backend-key.pem \
				-X POST "$u/v3/kv/put" -d '{"key":"L3Byb2Jl","value":"eA=="}' >/dev/null 2>&1; then
				date +%s.%N >>probe.log
				break
			fi
		done
		sleep 0.1
	done
}
probe & PIDS+=($!)

for i in $(seq "$N"); do
	mkdir -p "agent-$i/tls"
	cp pki/ca.pem "agent-$i/tls/ca.pem" # placed by configuration management
	agent_node "$i" "ws://127.0.0.1:$(port 1 3)" "ws://127.0.0.1:$(port 2 3)" "ws://127.0.0.1:$(port 3 3)"
done
wait_all "agents on ws://" healthy
sleep 1

declare -A RC
step() { # name, then the command: its time and exit status are reported
	mark "$1"
	local s rc=0; s=$(date +%s.%N)
	"${@:2}" >>migrate.log 2>&1 || rc=$?
	RC[$1]=$rc
	echo "$1 $s $(date +%s.%N) $rc" >>steps.txt
	sleep 1.5
}
must() { "$@" || { echo "failed: $*" >&2; tail -30 "$W/migrate.log" >&2; exit 1; }; }
m() { # member, migrate arguments
	local i=$1; shift
	"$T" --config "backend-$i/tlsd.yml" migrate "$@" --user root --tlsd-service sensu-tlsd
}

step restart restart_agents

ports() { echo --bridge-api-port "$(port "$1" 5)" --bridge-agent-port "$(port "$1" 6)"; }
for i in 1 2 3; do
	# shellcheck disable=SC2046
	step "p1-b$i" m "$i" apply --phase 1 $(ports "$i")
	[ "${RC[p1-b$i]}" = 0 ] || must false
	wait_all "agents back through the bridges" on_ws
done

step switch switch
agents_migrate() { local i; for i in $(seq "$N"); do "$T" --config "agent-$i/tlsd.yml" migrate "$@" --user root || return; done; }
step p2-agents agents_migrate apply --phase 2
[ "${RC[p2-agents]}" = 0 ] || must false
for i in 1 2 3; do step "p2-b$i" m "$i" apply --phase 2; done

# The last plaintext sightings are from before the switch: sightings older
# than the window no longer hold phase 3 back.
sleep 2
for i in 1 2 3; do
	step "p3-b$i" m "$i" apply --phase 3 --plaintext-window 3s
	[ "${RC[p3-b$i]}" = 0 ] || must false
	wait_all "agents on wss://" on_wss
done
for i in 1 2 3; do step "p4-b$i" m "$i" apply --phase 4; done

for i in 3 2 1; do
	step "rb3-b$i" m "$i" rollback
	[ "${RC[rb3-b$i]}" = 0 ] || must false
	wait_all "agents on wss://" on_wss
done
step rb2-agents switch_back
[ "${RC[rb2-agents]}" = 0 ] || must false
for i in 3 2 1; do
	step "rb1-b$i" m "$i" rollback
	[ "${RC[rb1-b$i]}" = 0 ] || must false
	wait_all "agents on ws://" on_ws
done
mark end
touch stop # the probe
status=$("$T" --config backend-1/tlsd.yml migrate status --cluster --user root 2>&1 | head -1 || true)

echo "agents: $N, members: 3; migrate's own output: $W/migrate.log (KEEP=1 keeps it)"
echo "after the walk: $status"
echo
# Per step: the longest stretch without an accepted probe write, from the
# step's start to the next step's (the settling pause included).
awk 'NR == FNR { ok[++n] = $1; next }
	{ name[++s] = $1; from[s] = $2 }
	END {
		for (j = 1; j <= s; j++) {
			to = (j < s) ? from[j + 1] : 1e12; last = from[j]; gap = 0
			for (k = 1; k <= n; k++) if (ok[k] >= from[j] && ok[k] < to) { if (ok[k] - last > gap) gap = ok[k] - last; last = ok[k] }
			if (j < s && to - last > gap) gap = to - last
			printf "%s %.2f\n", name[j], gap
		}
	}' probe.log steps.txt >gaps.txt
offline_times >offline.txt
awk '
	FILENAME == "steps.txt" { order[++k] = $1; took[$1] = $3 - $2; rc[$1] = $4; next }
	FILENAME == "gaps.txt" { gap[$1] = $2; next }
	$3 == "keepalive-failed" { fails[$2]++; next }
	$3 == "closed-by-backend" { closed[$2]++; next }
	$3 == "disconnected" { next }
	{ t[$1, $2] += $3; if (!(($1, $2) in seen)) { seen[$1, $2] = 1; n[$2]++ } agents[$1] = 1 }
	END {
		printf "%-10s %7s %4s %6s %12s %11s %6s %9s %13s %14s\n", "step", "took", "exit", "agents", "mean offline", "max offline", "closed", "failed ka", "> own restart", "etcd write gap"
		for (j = 1; j <= k; j++) {
			s = order[j]; sum = 0; max = 0; worse = 0
			for (a in agents) if ((a, s) in seen) {
				sum += t[a, s]; if (t[a, s] > max) max = t[a, s]
				if (s != "restart" && t[a, s] > t[a, "restart"] + 0.25) worse++
			}
			if (n[s]) printf "%-10s %6.2fs %4d %6d %11.3fs %10.3fs %6d %9d %13d %13.2fs\n", s, took[s], rc[s], n[s], sum / n[s], max, closed[s] + 0, fails[s] + 0, worse, gap[s]
			else printf "%-10s %6.2fs %4d %6d %12s %11s %6d %9d %13d %13.2fs\n", s, took[s], rc[s], 0, "-", "-", closed[s] + 0, fails[s] + 0, 0, gap[s]
		}
	}' steps.txt gaps.txt offline.txt
