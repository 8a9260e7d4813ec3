#!/usr/bin/env bash
# Proxy benchmark: direct plaintext, sensu-tlsd, stunnel4, haproxy and
# nginx's stream module side by side on loopback, one worker each.
# Usage: bench/proxy.sh            (from the repository root; needs root for
#        wrk, stunnel4, haproxy, nginx, libnginx-mod-stream, openssl)
# Env:   DURATION=8s  HS_DURATION=5s  IDLE_CONNS=2000  BIG_IDLE=9990  CONC=32
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-8s}
HS_DURATION=${HS_DURATION:-5s}
IDLE_CONNS=${IDLE_CONNS:-2000}
BIG_IDLE=${BIG_IDLE:-9990}
CONC=${CONC:-32}
for p in wrk stunnel4 haproxy nginx openssl; do
	command -v "$p" >/dev/null || { echo "missing $p: apt-get install -y wrk stunnel4 haproxy nginx libnginx-mod-stream openssl" >&2; exit 1; }
done

W=$(mktemp -d /tmp/sensu-tlsd-bench.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT
TCK=$(getconf CLK_TCK)

go build -o "$W/sensu-tlsd" ./cmd/sensu-tlsd
go build -o "$W/loadclient" ./bench/loadclient

# One ECDSA P-256 certificate for every proxy (and a second for rotation),
# and one RSA-2048 certificate, where a resumed handshake skips the costly
# signature.
cd "$W"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca-key.pem -out ca.pem -subj /CN=bench-ca -days 2 2>/dev/null
issue() { # name [rsa]
	local newkey=(-newkey ec -pkeyopt ec_paramgen_curve:P-256)
	[ "${2:-}" = rsa ] && newkey=(-newkey rsa:2048)
	openssl req "${newkey[@]}" -nodes -keyout "$1-key.pem" -out "$1.csr" -subj /CN=localhost 2>/dev/null
	printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >"$1.ext"
	openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca-key.pem -CAcreateserial -out "$1.pem" -days 1 -extfile "$1.ext" 2>/dev/null
}
issue srv
issue srv2
issue rsa rsa
cat srv.pem srv-key.pem >srv-combined.pem
cat rsa.pem rsa-key.pem >rsa-combined.pem
mkdir -p certs && cp srv.pem certs/cert.pem && cp srv-key.pem certs/key.pem

HTTP_BACKEND=127.0.0.1:18080 # nginx, keep-alive "ok"
WS_BACKEND=127.0.0.1:18090   # loadclient backend: answers the agent's upgrade with 101

cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
rss_kb() { awk '/^VmRSS/{print $2}' "/proc/$1/status"; }
wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/${1%:*}/${1#*:}") 2>/dev/null && return 0; sleep 0.1; done; echo "nothing listens on $1" >&2; return 1; }

cat >backend.conf <<CONF
worker_processes 1; master_process off; daemon off; pid $W/backend.pid; worker_rlimit_nofile 20000;
events { worker_connections 20000; }
http { access_log off; keepalive_requests 100000000; keepalive_timeout 3600s;
  server { listen $HTTP_BACKEND; location / { return 200 "ok\n"; } } }
CONF
nginx -p "$W" -c "$W/backend.conf" -e "$W/backend-error.log" & PIDS+=($!)
"$W/loadclient" -mode backend -addr $WS_BACKEND >/dev/null & PIDS+=($!)
wait_port $HTTP_BACKEND; wait_port $WS_BACKEND

cat >stunnel.conf <<CONF
foreground = yes
pid =
debug = 3
sslVersionMin = TLSv1.2
cert = $W/srv.pem
key = $W/srv-key.pem
[http]
accept = 127.0.0.1:18442
connect = $HTTP_BACKEND
[ws]
accept = 127.0.0.1:19442
connect = $WS_BACKEND
[rsa]
accept = 127.0.0.1:17442
connect = $HTTP_BACKEND
cert = $W/rsa.pem
key = $W/rsa-key.pem
CONF
cat >haproxy.cfg <<CONF
global
  nbthread 1
  maxconn 9900
  ssl-default-bind-options ssl-min-ver TLSv1.2
defaults
  mode tcp
  timeout connect 5s
  timeout client 1h
  timeout server 1h
frontend http
  bind 127.0.0.1:18443 ssl crt $W/srv-combined.pem
  default_backend http
frontend ws
  bind 127.0.0.1:19443 ssl crt $W/srv-combined.pem
  default_backend ws
frontend rsa
  bind 127.0.0.1:17443 ssl crt $W/rsa-combined.pem
  default_backend http
backend http
  server s $HTTP_BACKEND
backend ws
  server s $WS_BACKEND
CONF
cat >nginx-stream.conf <<CONF
load_module /usr/lib/nginx/modules/ngx_stream_module.so;
worker_processes 1; master_process off; daemon off; pid $W/stream.pid; worker_rlimit_nofile 20000;
events { worker_connections 20000; }
stream {
  ssl_certificate $W/srv.pem; ssl_certificate_key $W/srv-key.pem;
  ssl_protocols TLSv1.2 TLSv1.3; ssl_session_tickets on;
  server { listen 127.0.0.1:18444 ssl; proxy_pass $HTTP_BACKEND; }
  server { listen 127.0.0.1:19444 ssl; proxy_pass $WS_BACKEND; }
  server { listen 127.0.0.1:17444 ssl; ssl_certificate $W/rsa.pem; ssl_certificate_key $W/rsa-key.pem; proxy_pass $HTTP_BACKEND; }
}
CONF

# start_proxy NAME -> sets PROXY_PID, HTTP_PORT, WS_PORT, RSA_PORT and WS_PID,
# RSA_PID (the process serving those ports; sensu-tlsd runs one listener
# per process, the others serve all three)
start_proxy() {
	case $1 in
	sensu-tlsd)
		HTTP_PORT=18441 WS_PORT=19441 RSA_PORT=17441
		GOMAXPROCS=1 "$W/sensu-tlsd" proxy --mode terminate --listen 127.0.0.1:$HTTP_PORT --target $HTTP_BACKEND \
			--cert certs/cert.pem --key certs/key.pem --log-level warn >/dev/null & PROXY_PID=$!
		GOMAXPROCS=1 "$W/sensu-tlsd" proxy --mode terminate --listen 127.0.0.1:$WS_PORT --target $WS_BACKEND --agent-headers \
			--cert certs/cert.pem --key certs/key.pem --log-level warn >/dev/null & WS_PID=$!
		GOMAXPROCS=1 "$W/sensu-tlsd" proxy --mode terminate --listen 127.0.0.1:$RSA_PORT --target $HTTP_BACKEND \
			--cert rsa.pem --key rsa-key.pem --log-level warn >/dev/null & RSA_PID=$! ;;
	stunnel4) HTTP_PORT=18442 WS_PORT=19442 RSA_PORT=17442; stunnel4 stunnel.conf >"$W/stunnel.log" 2>&1 & PROXY_PID=$! ;;
	haproxy) HTTP_PORT=18443 WS_PORT=19443 RSA_PORT=17443; haproxy -db -f haproxy.cfg >"$W/haproxy.log" 2>&1 & PROXY_PID=$! ;;
	nginx-stream) HTTP_PORT=18444 WS_PORT=19444 RSA_PORT=17444; nginx -p "$W" -c "$W/nginx-stream.conf" -e "$W/stream-error.log" & PROXY_PID=$! ;;
	esac
	[ "$1" = sensu-tlsd ] || { WS_PID=$PROXY_PID RSA_PID=$PROXY_PID; }
	wait_port 127.0.0.1:$HTTP_PORT; wait_port 127.0.0.1:$WS_PORT; wait_port 127.0.0.1:$RSA_PORT
}
stop_proxy() { kill "$PROXY_PID" "$WS_PID" "$RSA_PID" 2>/dev/null || true; wait "$PROXY_PID" "$WS_PID" "$RSA_PID" 2>/dev/null || true; }

# run_wrk URL -> "req/s requests p99"
run_wrk() {
	wrk -t1 -c"$CONC" -d"$DURATION" --latency "$1" >wrk.out
	local rps req p99
	rps=$(awk '/^Requests\/sec/{print $2}' wrk.out)
	req=$(awk '/requests in/{print $1}' wrk.out)
	p99=$(awk '$1=="99%"{print $2}' wrk.out)
	echo "$rps $req $p99"
}
# per_unit PID COUNT CMD... -> CPU µs per unit of work done by CMD (COUNT parsed from its output by the caller)
cpu_us() { echo "$1 $2 $TCK" | awk '{ if ($2 > 0) printf "%.1f", ($1 * 1000000 / $3) / $2; else print "n/a" }'; }

declare -A RPS P99 USREQ USFULL USRES USFULL12 USRES12 USFULLRSA USRESRSA KBIDLE
read -r rps _ p99 < <(run_wrk "http://$HTTP_BACKEND/")
RPS[direct]=$rps P99[direct]=$p99
USREQ[direct]=- USFULL[direct]=- USRES[direct]=- USFULL12[direct]=- USRES12[direct]=- USFULLRSA[direct]=- USRESRSA[direct]=- KBIDLE[direct]=-

# handshakes PID PORT KIND [-tls12] -> CPU µs per connection, or
# "not-resumed" for a resume run that resumed no session (a full run that
# resumed one aborts: the client would be broken).
handshakes() {
	local pid=$1 port=$2 kind=$3 t0 t1 out n resumed
	shift 3
	t0=$(cpu_ticks "$pid")
	out=$("$W/loadclient" -mode "$kind" "$@" -addr 127.0.0.1:"$port" -ca ca.pem -c 8 -d "$HS_DURATION")
	t1=$(cpu_ticks "$pid")
	echo "   $kind $*: $out" >&2
	n=$(sed -E 's/.*connections=([0-9]+).*/\1/' <<<"$out")
	resumed=$(sed -E 's/.*resumed=([0-9]+).*/\1/' <<<"$out")
	if [ "$kind" = full ] && [ "$resumed" -ne 0 ]; then echo "full-handshake run on port $port resumed sessions: $out" >&2; exit 1; fi
	if [ "$kind" = resume ] && [ "$resumed" -eq 0 ]; then echo "   WARNING: resume run on port $port resumed no session" >&2; echo not-resumed; return; fi
	cpu_us $((t1 - t0)) "$n"
}

PROXIES=(sensu-tlsd stunnel4 haproxy nginx-stream)
for p in "${PROXIES[@]}"; do
	echo "== $p" >&2
	start_proxy "$p"
	t0=$(cpu_ticks "$PROXY_PID")
	read -r rps req p99 < <(run_wrk "https://127.0.0.1:$HTTP_PORT/")
	t1=$(cpu_ticks "$PROXY_PID")
	RPS[$p]=$rps P99[$p]=$p99 USREQ[$p]=$(cpu_us $((t1 - t0)) "$req")

	USFULL[$p]=$(handshakes "$PROXY_PID" "$HTTP_PORT" full)
	USRES[$p]=$(handshakes "$PROXY_PID" "$HTTP_PORT" resume)
	USFULL12[$p]=$(handshakes "$PROXY_PID" "$HTTP_PORT" full -tls12)
	USRES12[$p]=$(handshakes "$PROXY_PID" "$HTTP_PORT" resume -tls12)
	USFULLRSA[$p]=$(handshakes "$RSA_PID" "$RSA_PORT" full)
	USRESRSA[$p]=$(handshakes "$RSA_PID" "$RSA_PORT" resume)
	stop_proxy

	# Idle memory in a fresh process for every proxy, so no proxy's figure
	# holds the heap of the load phases above.
	start_proxy "$p"
	sleep 1
	r0=$(rss_kb "$WS_PID")
	"$W/loadclient" -mode idle -addr 127.0.0.1:$WS_PORT -ca ca.pem -n "$IDLE_CONNS" >idle.out & IPID=$!
	for _ in $(seq 600); do grep -q ready idle.out 2>/dev/null && break; sleep 0.1; done
	sleep 5 # sensu-tlsd parks a connection after 2 s idle
	r1=$(rss_kb "$WS_PID")
	echo "   idle: $(cat idle.out) rss ${r0}kB -> ${r1}kB" >&2
	KBIDLE[$p]=$(echo "$r0 $r1 $IDLE_CONNS" | awk '{printf "%.1f", ($2-$1)/$3}')
	kill $IPID; wait $IPID 2>/dev/null || true
	stop_proxy
done

ratio() { echo "$1 $2" | awk '$2>0 && $1!="-" {printf "%.2f", $1/$2; exit} {print "-"}'; }
printf '\n| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' proxy "req/s" "p99" "µs/req" "µs/full 1.3" "µs/resumed 1.3" "µs/full 1.2" "µs/resumed 1.2" \
	"µs/full 1.3 RSA" "µs/resumed 1.3 RSA" "kB/idle conn" "µs/req ÷ haproxy" "µs/full 1.3 ÷ haproxy" "kB/idle ÷ haproxy"
printf '|%s\n' "---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
for p in direct "${PROXIES[@]}"; do
	printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$p" "${RPS[$p]}" "${P99[$p]}" "${USREQ[$p]}" "${USFULL[$p]}" "${USRES[$p]}" \
		"${USFULL12[$p]}" "${USRES12[$p]}" "${USFULLRSA[$p]}" "${USRESRSA[$p]}" "${KBIDLE[$p]}" "$(ratio "${USREQ[$p]}" "${USREQ[haproxy]}")" \
		"$(ratio "${USFULL[$p]}" "${USFULL[haproxy]}")" "$(ratio "${KBIDLE[$p]}" "${KBIDLE[haproxy]}")"
done
for v in "${USRES[sensu-tlsd]}" "${USRES12[sensu-tlsd]}" "${USRESRSA[sensu-tlsd]}"; do
	[ "$v" != not-resumed ] || { echo "sensu-tlsd resumed no session in a resume run: session tickets are broken" >&2; exit 1; }
done
echo "(CPU = proxy process utime+stime from /proc/PID/stat over the run ÷ work done; full/resumed = one connection: handshake + one request + close, ECDSA P-256 unless RSA; kB/idle = RSS growth of a fresh proxy process ÷ $IDLE_CONNS idle TLS agent sessions, read 5 s after they are up)"

# Many idle agent sessions through one sensu-tlsd process.
echo; echo "== sensu-tlsd: $BIG_IDLE idle agent websockets, 2 client processes, 4 source addresses" >&2
start_proxy sensu-tlsd
r0=$(rss_kb "$WS_PID"); t0=$(cpu_ticks "$WS_PID")
half=$((BIG_IDLE / 2))
"$W/loadclient" -mode idle -addr 127.0.0.1:$WS_PORT -ca ca.pem -n $half -sources 127.0.0.2,127.0.0.3 -name a >idle1.out & C1=$!
"$W/loadclient" -mode idle -addr 127.0.0.1:$WS_PORT -ca ca.pem -n $((BIG_IDLE - half)) -sources 127.0.0.4,127.0.0.5 -name b >idle2.out & C2=$!
for _ in $(seq 1200); do grep -q ready idle1.out 2>/dev/null && grep -q ready idle2.out 2>/dev/null && break; sleep 0.1; done
t1=$(cpu_ticks "$WS_PID")
sleep 10
t2=$(cpu_ticks "$WS_PID"); r1=$(rss_kb "$WS_PID")
open=$(cat idle1.out idle2.out | sed -E 's/.*open=([0-9]+).*/\1/' | awk '{s+=$1} END{print s}')
fds=$(ls /proc/$WS_PID/fd | wc -l)
echo "idle sessions open: $open (clients: $(tr '\n' ' ' <idle1.out) $(tr '\n' ' ' <idle2.out)); proxy fds: $fds"
echo "$r0 $r1 $open $((t1 - t0)) $((t2 - t1)) $TCK" | awk '{
	per = ($2-$1)/$3
	setup = ($4*1e6/$6)/$3; idle = ($5/$6)/10*100
	printf "RSS: %.1f MB base, %.1f MB with %d sessions = %.1f kB per session; projected 50,000: %.0f MB\n", $1/1024, $2/1024, $3, per, ($1 + per*50000)/1024
	printf "CPU: %.0f µs per session set up (handshake + upgrade + dial); %.2f%% of a core while %d sessions sat idle for 10 s\n", setup, idle, $3
	printf "CPU projected to 50,000 sessions: %.0f s of one core to set them all up; %.2f%% of a core while they sit idle\n", setup*50000/1e6, idle*50000/$3
}'
kill $C1 $C2; wait $C1 $C2 2>/dev/null || true
stop_proxy

# Rotation under load: full handshakes at full speed while the pair is
# replaced by rename; every handshake must succeed and both serials appear.
echo; echo "== rotation under load" >&2
start_proxy sensu-tlsd
"$W/loadclient" -mode full -addr 127.0.0.1:$HTTP_PORT -ca ca.pem -c 16 -d 6s >rot.out & L=$!
sleep 2
cp srv2-key.pem certs/key.new && cp srv2.pem certs/cert.new && mv certs/key.new certs/key.pem && mv certs/cert.new certs/cert.pem
wait $L
echo "rotation under load: $(cat rot.out)"
stop_proxy
