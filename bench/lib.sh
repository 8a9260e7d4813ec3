# Shell pieces the cutover benchmarks share (agent-cutover.sh,
# fleet-cutover.sh, cluster-agents.sh); sourced, not run. Agent i lives in
# agent-i/ under the work dir (agent.yml, agent.log, agent.pid, tlsd.yml)
# and serves its API on BASE+100+i; N is the number of agents.

# bench_init NAME PORT [PROGRAM...]: N (default 10) and BASE (default
# PORT), checks that go, curl and the PROGRAMs are on PATH, makes the work
# dir W (removed on exit unless KEEP is set), builds sensu-tlsd (T) and the
# stand-in into it, and cds there.
bench_init() {
	local p
	N=${N:-10}
	BASE=${BASE:-$2}
	for p in go curl "${@:3}"; do command -v "$p" >/dev/null || { echo "missing $p" >&2; exit 1; }; done
	W=$(mktemp -d "/tmp/sensu-tlsd-$1-bench.XXXXXX")
	PIDS=()
	trap cleanup EXIT
	go build -o "$W/sensu-tlsd" ./cmd/sensu-tlsd
	go build -o "$W/standin" ./internal/standin
	T="$W/sensu-tlsd"
	cd "$W"
}

# cleanup: stops the supervisors (W/stop, DIR/stop), then every process
# with a pid file one level down and every background job in PIDS.
cleanup() {
	local f p
	touch "$W/stop" 2>/dev/null || true
	for f in "$W"/*/*.pid; do [ -f "$f" ] && touch "${f%/*}/stop" || true; done
	for f in "$W"/*/*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	if [ -n "${KEEP:-}" ]; then echo "kept $W" >&2; else rm -rf "$W"; fi
}

# supervise DIR NAME CMD...: runs CMD again each time it ends (after 50 ms,
# as systemd's RestartSec), its pid in DIR/NAME.pid and its stderr in
# DIR/NAME.log, while DIR/hold does not exist, until DIR/stop exists.
supervise() {
	local d=$1 name=$2; shift 2
	( while [ ! -e "$d/stop" ]; do
		if [ ! -e "$d/hold" ]; then
			"$@" 2>>"$d/$name.log" & echo $! >"$d/$name.pid"
			wait $! || true
		fi
		sleep 0.05
	done ) & PIDS+=($!)
}

# restart_sh DIR NAME: the shell command that kills the process supervised
# in DIR and returns once it has exited, as systemctl restart does. It
# reads the pid before it releases a held supervisor, which could start
# the next process (and write its pid) in between.
restart_sh() { echo "pid=\$(cat $1/$2.pid); rm -f $1/hold; kill \$pid 2>/dev/null; while kill -0 \$pid 2>/dev/null; do sleep 0.02; done"; }
# stop_sh DIR NAME: the same, but the supervisor holds until a restart.
stop_sh() { echo "touch $1/hold; pid=\$(cat $1/$2.pid); kill \$pid 2>/dev/null; while kill -0 \$pid 2>/dev/null; do sleep 0.02; done"; }
# restart_cmd DIR NAME, stop_cmd DIR NAME: those commands as a services
# entry's YAML command list.
restart_cmd() { echo "[/bin/sh, -c, '$(restart_sh "$1" "$2")']"; }
stop_cmd() { echo "[/bin/sh, -c, '$(stop_sh "$1" "$2")']"; }

# healthy i: agent i's API answers /healthz.
healthy() { curl -fs "http://127.0.0.1:$((BASE + 100 + $1))/healthz" >/dev/null; }
# on_wss i, on_ws i: agent i is healthy and its agent.yml says wss:// (ws://).
on_wss() { grep -q 'wss://' "agent-$1/agent.yml" && healthy "$1"; }
on_ws() { ! grep -q 'wss://' "agent-$1/agent.yml" && healthy "$1"; }

# wait_all WHAT CONDITION: waits up to 120 s for CONDITION i to hold for
# every agent, or fails naming WHAT.
wait_all() {
	local i ok
	for _ in $(seq 1200); do
		ok=0
		for i in $(seq "$N"); do "$2" "$i" && ok=$((ok + 1)); done
		[ "$ok" = "$N" ] && return 0
		sleep 0.1
	done
	echo "timed out waiting for $1" >&2; exit 1
}

# mark STEP: starts STEP in every agent's log and in migrate.log.
mark() { local i; for i in $(seq "$N"); do echo "=== step $1" >>"agent-$i/agent.log"; done; echo "--- $1" >>migrate.log; }

# agent_node I URL...: agent node I: agent.yml on the backend URLs, a
# sensu-tlsd config following the cutover (the CA pinned by PIN when set,
# else placed in agent-I/tls/ca.pem beforehand) and the stand-in agent
# started under its supervisor.
agent_node() {
	local i=$1 d=agent-$1 u; shift
	mkdir -p "$d/tls"
	{ echo "name: agent-$i"; echo "backend-url:"; for u; do echo "  - \"$u\""; done
	  echo "api-host: 127.0.0.1"; echo "api-port: $((BASE + 100 + i))"; } >"$d/agent.yml"
	cat >"$d/tlsd.yml" <<CFG
state-dir: $W/$d/state
metrics-address: ""
sensu: {agent-config: $W/$d/agent.yml, agent-env-files: [$W/$d/no-env-file], agent-ca-file: $W/$d/tls/ca.pem}
agent-cutover: {enabled: true, ca-file: $W/$d/tls/ca.pem, ${PIN:+ca-fingerprint-sha256: "$PIN", }interval: 1s}
services:
  - {name: sensu-agent, preset: sensu-agent, action: command, command: $(restart_cmd "$W/$d" agent),
     health: {url: "http://127.0.0.1:$((BASE + 100 + i))/healthz"}}
CFG
	supervise "$d" agent ./standin agent -c "$d/agent.yml" --keepalive-interval 200ms
}

# restart_agents: restarts each agent by its service command, one after
# the other, each waited for until its new process is healthy.
restart_agents() {
	local i old
	for i in $(seq "$N"); do
		old=$(cat "agent-$i/agent.pid")
		sh -c "$(restart_sh "$W/agent-$i" agent)"
		for _ in $(seq 600); do [ "$(cat "agent-$i/agent.pid")" != "$old" ] && healthy "$i" && break; sleep 0.05; done
	done
}

# switch: starts each agent node's daemon (its follower switches agent.yml
# to wss:// and restarts the agent), one node after the other.
switch() {
	local i
	for i in $(seq "$N"); do
		"$T" run --config "agent-$i/tlsd.yml" 2>"agent-$i/tlsd.log" & echo $! >"agent-$i/tlsd.pid"; PIDS+=($!)
		for _ in $(seq 1200); do on_wss "$i" && break; sleep 0.05; done
	done
	wait_all "agents switched to wss://" on_wss
}

# switch_back: each agent node back to ws://: its follower stopped (or it
# switches again), migrate rollback, the follower's backup of agent.yml put
# back and the agent restarted.
switch_back() {
	local i d
	for i in $(seq "$N"); do
		d=agent-$i
		kill "$(cat "$d/tlsd.pid")"; while kill -0 "$(cat "$d/tlsd.pid")" 2>/dev/null; do sleep 0.02; done
		"$T" --config "$d/tlsd.yml" migrate rollback --user root >>migrate.log 2>&1 || return
		cp "$d/agent.yml.sensu-tlsd.bak" "$d/agent.yml"
		sh -c "$(restart_sh "$W/$d" agent)"
		for _ in $(seq 600); do on_ws "$i" && break; sleep 0.05; done
	done
	wait_all "agents back on ws://" on_ws
}

# offline_times: per agent and step (the one marked when it began), each
# stretch offline in seconds, from the first sign of the connection going
# (stopping, a failed keepalive, disconnected) to the next "agent connected"
# (slog time stamps); and one line per failed keepalive (closed-by-backend
# when the backend sent a close frame, else keepalive-failed) and per
# "agent disconnected" (disconnected). What comes before the first step
# is left out.
offline_times() {
	local i
	for i in $(seq "$N"); do
		awk -v agent="agent-$i" '
		function secs(line,   a) { match(line, /T[0-9:.]+Z/); split(substr(line, RSTART + 1, RLENGTH - 2), a, ":"); return a[1] * 3600 + a[2] * 60 + a[3] }
		/^=== step/ { step = $3 }
		!step { next } # before the first step: the agents starting
		/msg="agent stopping"|msg="agent disconnected"|msg="keepalive failed"/ && !down { down = secs($0); from = step }
		/msg="agent connected"/ && down { printf "%s %s %.3f\n", agent, from, secs($0) - down; down = 0 }
		/msg="keepalive failed"/ { printf "%s %s %s\n", agent, step, /received close frame/ ? "closed-by-backend" : "keepalive-failed" }
		/msg="agent disconnected"/ { printf "%s %s disconnected\n", agent, step }' "agent-$i/agent.log"
	done
}
