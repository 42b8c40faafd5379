#!/usr/bin/env bash
# The data-plane benchmark: what a pair of Palisade sidecar proxies adds to
# an HTTP request, against no proxy and against a pair of HAProxy
# processes doing the same mutual TLS hop, all measured in the same run on
# the same machine. See bench/README.md.
#
#   bench/run.sh                 # writes the report to stdout and bench/results.md
#   RUNS=2 bench/run.sh          # the whole sequence twice, one table each
#
# Knobs (environment), with their defaults: RATE=1000, RATE_DURATION=20s,
# SAT_DURATION=15s, WARMUP=2s, CONNS=16, RUNS=1, RESULTS=bench/results.md,
# THREADS=$(nproc) (GOMAXPROCS of each Palisade proxy and nbthread of each
# HAProxy: the same for both). KEEP_TMP=1 keeps the temporary directory
# with every log. PERF=1 also records each process with perf(1) during the
# fixed-rate phase into that directory (and keeps it); sampling costs CPU,
# so such a run's numbers are not the benchmark's.
#
# It builds bin/palisade, installs HAProxy with apt-get when root and it is
# missing (otherwise that setup is skipped), and stops every process it
# started on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
RATE=${RATE:-1000}
RATE_DURATION=${RATE_DURATION:-20s}
SAT_DURATION=${SAT_DURATION:-15s}
WARMUP=${WARMUP:-2s}
CONNS=${CONNS:-16}
RUNS=${RUNS:-1}
RESULTS=${RESULTS:-bench/results.md}
NPROC=$(nproc)
THREADS=${THREADS:-$NPROC}

TMP=$(mktemp -d "${TMPDIR:-/tmp}/palisade-bench.XXXXXX")
PIDS=()
cleanup() {
	local pid
	for pid in "${PIDS[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${PIDS[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	if [[ ${KEEP_TMP:-} == 1 || ${PERF:-} == 1 ]]; then
		echo "bench: logs kept in $TMP" >&2
	else
		rm -rf "$TMP"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "bench: $*" >&2; }
die() {
	log "$*"
	exit 1
}

# start NAME CMD... runs CMD in the background with its output in
# $TMP/NAME.log and leaves its pid in LAST_PID. CMD is exec'd directly, so
# the pid is the process measured, not a wrapping shell.
start() {
	local name=$1
	shift
	"$@" >"$TMP/$name.log" 2>&1 &
	LAST_PID=$!
	PIDS+=("$LAST_PID")
}

# stop PID stops one process started by start.
stop() {
	local keep=() p
	kill "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
	for p in "${PIDS[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
	PIDS=("${keep[@]}")
}

# until_ok DESC LOG CMD... retries CMD for up to 15 s.
until_ok() {
	local desc=$1 logf=$2 i
	shift 2
	for ((i = 0; i < 150; i++)); do
		if "$@" >/dev/null 2>&1; then
			return 0
		fi
		sleep 0.1
	done
	cat "$logf" >&2 || true
	die "$desc did not come up"
}

ports() { "$TMP/loadgen" -free-ports "$1"; }

# CPU ticks (utime+stime, all threads) of a process: the fields after the
# ")" closing the command name, where utime and stime are the 12th and 13th.
ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
# Context switches, voluntary and not, summed over the process's threads:
# parking and waking threads is much of what a proxy that idles between
# requests spends its CPU on, the more so in a VM.
ctxsw() { cat /proc/"$1"/task/*/status 2>/dev/null | awk '/ctxt_switches/ {n += $2} END {print n + 0}'; }
# VmRSS, RssAnon or VmHWM in MB (10^6 bytes, as the targets are; /proc counts KiB).
mem() { awk -v k="$2:" '$1 == k {printf "%.1f", $2 * 1024 / 1e6}' "/proc/$1/status"; }
now() { date +%s.%N; }
# jget FILE KEY reads a number from loadgen's JSON.
jget() { sed -n "s/.*\"$2\": \([0-9.e+-]*\).*/\1/p" "$1"; }
calc() { awk "BEGIN {printf \"$1\", $2}"; }

# --- Tools -------------------------------------------------------------------

log "building bin/palisade and the load generator"
CGO_ENABLED=0 go build -o bin/palisade ./cmd/palisade
go build -o "$TMP/loadgen" ./bench/loadgen
PALISADE=$ROOT/bin/palisade

HAPROXY=$(command -v haproxy || true)
if [[ -z $HAPROXY || -z $(command -v openssl) ]]; then
	if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
		log "installing haproxy and openssl (apt-get)"
		export DEBIAN_FRONTEND=noninteractive
		apt-get install -y -q haproxy openssl >/dev/null 2>&1 ||
			{ apt-get update -q >/dev/null && apt-get install -y -q haproxy openssl >/dev/null; }
		HAPROXY=$(command -v haproxy || true)
	else
		log "haproxy or openssl missing and not root (apt-get install haproxy openssl): skipping the haproxy setup"
	fi
fi
command -v openssl >/dev/null || HAPROXY=
if [[ ${PERF:-} == 1 ]] && ! command -v perf >/dev/null; then
	die "PERF=1 needs perf (Debian: linux-perf)"
fi
SETUPS=(direct palisade)
[[ -n $HAPROXY ]] && SETUPS+=(haproxy)

# --- The backend (the application every setup ends at) -------------------------

read -r BACKEND_PORT < <(ports 1)
BACKEND=127.0.0.1:$BACKEND_PORT
start backend "$TMP/loadgen" -serve "$BACKEND"
BACKEND_PID=$LAST_PID
until_ok backend "$TMP/backend.log" "$TMP/loadgen" -check -url "http://$BACKEND/"

# --- Palisade's control plane: server, agent, identities ---------------------------
# The sequence of cmd/palisade/proxy_test.go. Server and agent stay up for
# the whole run and are not measured: they are idle while requests flow.

mapfile -t P < <(ports 2)
SERVER_ADDR=127.0.0.1:${P[0]}
POLICY_ADDR=127.0.0.1:${P[1]}
SERVER_SOCK=$TMP/server/admin.sock
AGENT_SOCK=$TMP/agent.sock
start server "$PALISADE" server --state-dir "$TMP/server" --bind "$SERVER_ADDR" -f bench/policy --policy-bind "$POLICY_ADDR"
until_ok "palisade server" "$TMP/server.log" "$PALISADE" healthcheck --server-socket "$SERVER_SOCK"
TOKEN_OUT=$("$PALISADE" agent token --server-socket "$SERVER_SOCK")
TOKEN=$(sed -n 's/.*Token: \([^ ]*\).*/\1/p' <<<"$TOKEN_OUT")
AGENT_ID=$(sed -n 's/.*Agent ID: \([^ ]*\).*/\1/p' <<<"$TOKEN_OUT")
[[ -n $TOKEN && -n $AGENT_ID ]] || die "agent token: $TOKEN_OUT"
"$PALISADE" bundle show --server-socket "$SERVER_SOCK" >"$TMP/bundle.pem"
start agent "$PALISADE" agent --server "$SERVER_ADDR" --join-token "$TOKEN" --trust-bundle "$TMP/bundle.pem" \
	--state-dir "$TMP/agent" --socket "$AGENT_SOCK"
until_ok "palisade agent" "$TMP/agent.log" "$PALISADE" healthcheck --agent-socket "$AGENT_SOCK"
for sa in client server; do
	"$PALISADE" entry create --server-socket "$SERVER_SOCK" --spiffe-id "spiffe://cluster.local/ns/bench/sa/$sa" \
		--parent-id "$AGENT_ID" --selector "unix:uid:$(id -u)" >/dev/null
done

# --- HAProxy's certificates: a CA and one ECDSA P-256 leaf per side ----------------

if [[ -n $HAPROXY ]]; then
	mkdir "$TMP/pki"
	(
		cd "$TMP/pki"
		openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key \
			-subj /CN=bench-ca -days 2 -out ca.pem 2>/dev/null
		for side in client server; do
			openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$side.key" \
				-subj "/CN=$side.bench.local" -out "$side.csr" 2>/dev/null
			printf 'subjectAltName=DNS:%s.bench.local\nextendedKeyUsage=%s\n' "$side" \
				"$([[ $side == client ]] && echo clientAuth || echo serverAuth)" >"$side.ext"
			openssl x509 -req -in "$side.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
				-extfile "$side.ext" -out "$side.crt" 2>/dev/null
			cat "$side.crt" "$side.key" >"$side.pem"
		done
	)
fi

# haproxy_cfg FRONTEND_BIND BACKEND_SERVER [RULE] writes one HAProxy's
# configuration to stdout. nbthread is THREADS, the GOMAXPROCS each
# Palisade proxy gets (by default both are the CPU count, Go's and
# HAProxy's own defaults), so neither side gets more cores than the other.
# http-reuse always shares upstream connections across client connections,
# as Palisade's (and Envoy's) per-cluster connection pool does. No logging,
# as Palisade runs without access logs here.
haproxy_cfg() {
	cat <<EOF
global
	nbthread $THREADS
	maxconn 1000
defaults
	mode http
	option http-keep-alive
	http-reuse always
	timeout connect 5s
	timeout client 1h
	timeout server 1h
	timeout http-keep-alive 1h
frontend fe
	bind $1
	${3:-}
	default_backend be
backend be
	server up $2
EOF
}

# --- One setup: start its proxies, measure, stop them ------------------------

# The proxies of the setup being measured: "name:pid" pairs, the URL the
# load generator sends to, and the server-side proxy's address.
PROXIES=()
URL=
INBOUND=

setup_direct() { URL=http://$BACKEND/; }

setup_palisade() {
	local p
	mapfile -t p < <(ports 4)
	local in=127.0.0.1:${p[0]} out=127.0.0.1:${p[1]}
	local common=(env GOMAXPROCS="$THREADS" "$PALISADE" proxy --server "$POLICY_ADDR" --socket "$AGENT_SOCK")
	# --metrics serves what the proxy collects anyway; Istio's sidecars
	# in the anchor numbers run with their telemetry on too.
	start palisade-server "${common[@]}" --workload bench/server --metrics "127.0.0.1:${p[2]}" \
		--inbound "8080,listen=$in,app=$BACKEND"
	local server=$LAST_PID
	start palisade-client "${common[@]}" --workload bench/client --metrics "127.0.0.1:${p[3]}" \
		--outbound "listen=$out,to=bench/server:8080,endpoint=$in"
	PROXIES=("client-proxy:$LAST_PID" "server-proxy:$server")
	URL=http://$out/ INBOUND=$in
}

setup_haproxy() {
	local p pki=$TMP/pki
	mapfile -t p < <(ports 2)
	local in=127.0.0.1:${p[0]} out=127.0.0.1:${p[1]}
	# The server side requires a client certificate from the CA and, as
	# the AuthorizationPolicy Palisade enforces, allows only the client's
	# identity and GET.
	haproxy_cfg "$in ssl crt $pki/server.pem ca-file $pki/ca.pem verify required" "$BACKEND" \
		'http-request deny unless METH_GET { ssl_c_s_dn(CN) -m str client.bench.local }' >"$TMP/haproxy-server.cfg"
	# The client side verifies the server's certificate and name (secure
	# naming, as Palisade checks the destination's SPIFFE ID).
	haproxy_cfg "$out" "$in ssl crt $pki/client.pem ca-file $pki/ca.pem verify required verifyhost server.bench.local" \
		>"$TMP/haproxy-client.cfg"
	# -db: stay in the foreground, one process, so the pid is what runs.
	start haproxy-server "$HAPROXY" -db -f "$TMP/haproxy-server.cfg"
	local server=$LAST_PID
	start haproxy-client "$HAPROXY" -db -f "$TMP/haproxy-client.cfg"
	PROXIES=("client-proxy:$LAST_PID" "server-proxy:$server")
	URL=http://$out/ INBOUND=$in
}

# measure RUN SETUP runs the fixed-rate then the saturation phase and
# appends one line for the setup to $TMP/setups.tsv and one per process
# (the setup's proxies, then the backend for reference) to
# $TMP/processes.tsv.
measure() {
	local run=$1 setup=$2 i
	PROXIES=()
	"setup_$setup"
	local logf=$TMP/$setup-client.log
	[[ $setup != direct ]] || logf=$TMP/backend.log
	until_ok "$setup" "$logf" "$TMP/loadgen" -check -url "$URL"
	# The proxies must enforce the policy, not just pass bytes: the server
	# side denies a POST, and refuses plaintext.
	if [[ $setup != direct ]] && command -v curl >/dev/null; then
		local code
		code=$(curl -s -o /dev/null -w '%{http_code}' -X POST --max-time 5 "$URL" || true)
		[[ $code == 403 ]] || die "$setup: POST answered $code, want 403 (policy not enforced)"
		code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://$INBOUND/" || true)
		[[ $code != 200 ]] || die "$setup: the server side answered plaintext (mutual TLS not required)"
	fi

	local procs=("${PROXIES[@]}" "backend:$BACKEND_PID")
	local names=() pids=() perfs=() k0=() k1=() k2=() c0=() c1=() rss=() anon=() hwm=()
	for i in "${!procs[@]}"; do
		names+=("${procs[i]%%:*}")
		pids+=("${procs[i]#*:}")
	done
	if [[ ${PERF:-} == 1 ]]; then
		for i in "${!pids[@]}"; do
			start "perf-$run-$setup-${names[i]}" perf record -q -F 997 -g -p "${pids[i]}" \
				-o "$TMP/$run-$setup-${names[i]}.perf.data"
			perfs+=("$LAST_PID")
		done
	fi

	local t0 t1 t2
	t0=$(now)
	for i in "${!pids[@]}"; do
		k0+=("$(ticks "${pids[i]}")")
		c0+=("$(ctxsw "${pids[i]}")")
	done
	log "run $run, $setup: $RATE rps for $RATE_DURATION"
	"$TMP/loadgen" -url "$URL" -rate "$RATE" -conns "$CONNS" -warmup "$WARMUP" -duration "$RATE_DURATION" >"$TMP/$run-$setup-rate.json"
	t1=$(now)
	for i in "${!pids[@]}"; do
		k1+=("$(ticks "${pids[i]}")")
		c1+=("$(ctxsw "${pids[i]}")")
		rss+=("$(mem "${pids[i]}" VmRSS)")
		anon+=("$(mem "${pids[i]}" RssAnon)")
		hwm+=("$(mem "${pids[i]}" VmHWM)")
	done
	for i in "${!perfs[@]}"; do
		kill -INT "${perfs[i]}"
		stop "${perfs[i]}"
	done
	log "run $run, $setup: saturation, $CONNS connections for $SAT_DURATION"
	"$TMP/loadgen" -url "$URL" -conns "$CONNS" -warmup "$WARMUP" -duration "$SAT_DURATION" >"$TMP/$run-$setup-sat.json"
	t2=$(now)
	for i in "${!pids[@]}"; do k2+=("$(ticks "${pids[i]}")"); done

	local r=$TMP/$run-$setup-rate.json s=$TMP/$run-$setup-sat.json hz
	hz=$(getconf CLK_TCK)
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$run" "$setup" \
		"$(jget "$r" p50_us)" "$(jget "$r" p90_us)" "$(jget "$r" p99_us)" "$(jget "$r" p999_us)" \
		"$(($(jget "$r" errors) + $(jget "$s" errors)))" "$(jget "$s" rps)" "$(jget "$r" rps)" >>"$TMP/setups.tsv"
	for i in "${!pids[@]}"; do
		# vCPU: CPU seconds over wall seconds, for each phase. Each
		# window includes the load generator's warmup, at the phase's own
		# load, so the ratio is that load's.
		printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$run" "$setup" "${names[i]}" \
			"$(calc %.3f "(${k1[i]} - ${k0[i]}) / $hz / ($t1 - $t0)")" "${rss[i]}" "${anon[i]}" "${hwm[i]}" \
			"$(calc %.1f "(${c1[i]} - ${c0[i]}) / ($t1 - $t0) / $RATE")" \
			"$(calc %.2f "(${k2[i]} - ${k1[i]}) / $hz / ($t2 - $t1)")" >>"$TMP/processes.tsv"
	done
	for i in "${!PROXIES[@]}"; do stop "${pids[i]}"; done
}

# --- Run ---------------------------------------------------------------------

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
STARTED=$(date -u '+%Y-%m-%d %H:%M UTC')
: >"$TMP/setups.tsv"
: >"$TMP/processes.tsv"
for ((run = 1; run <= RUNS; run++)); do
	for setup in "${SETUPS[@]}"; do
		measure "$run" "$setup"
	done
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
stop "$BACKEND_PID"

# --- Report ------------------------------------------------------------------

ms() { calc %.3f "($1) / 1000"; }
verdict() { awk "BEGIN {print ($1) ? \"met\" : \"**not met**\"}"; }

report() {
	local run setup p50 p90 p99 p999 errs sat rps d50 d90 d99 dsat vcpu rssmax
	cat <<EOF
## Data-plane benchmark

- Date: $STARTED
- Machine: $NPROC vCPU, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), Linux $(uname -r)
- Command: \`THREADS=$THREADS RATE=$RATE RATE_DURATION=$RATE_DURATION SAT_DURATION=$SAT_DURATION WARMUP=$WARMUP CONNS=$CONNS RUNS=$RUNS bench/run.sh\`
- Load average before the run: $LOAD_BEFORE (after: $LOAD_AFTER). Other processes may share this machine. Nothing is pinned: the load generator, the backend and the proxies share all $NPROC CPUs.
- Load: open loop at $RATE rps over $CONNS keep-alive connections, latency from each request's scheduled time; saturation is $CONNS closed-loop connections. Each phase starts with $WARMUP of unmeasured load.
- Each Palisade proxy runs with GOMAXPROCS=$THREADS, each HAProxy with nbthread $THREADS$([[ $THREADS == "$NPROC" ]] && echo ' (both programs'"'"' defaults on this machine)').$([[ -z $HAPROXY ]] && echo ' HAProxy was not available: its setup is skipped.')
EOF
	while IFS=$'\t' read -r run setup p50 p90 p99 p999 errs sat rps; do
		if [[ $setup == direct ]]; then
			d50=$p50 d90=$p90 d99=$p99 dsat=$sat
			printf '\n### Run %s\n\n' "$run"
			echo "| setup | achieved rps | p50 ms | p90 ms | p99 ms | p99.9 ms | added p50 ms | added p90 ms | added p99 ms | errors | saturation rps | vs direct |"
			echo "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
			printf '| direct | %s | %s | %s | %s | %s | – | – | – | %s | %s | 1.00 |\n' "$(calc %.0f "$rps")" \
				"$(ms "$p50")" "$(ms "$p90")" "$(ms "$p99")" "$(ms "$p999")" "$errs" "$(calc %.0f "$sat")"
			continue
		fi
		printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$setup" "$(calc %.0f "$rps")" \
			"$(ms "$p50")" "$(ms "$p90")" "$(ms "$p99")" "$(ms "$p999")" \
			"$(ms "$p50 - $d50")" "$(ms "$p90 - $d90")" "$(ms "$p99 - $d99")" \
			"$errs" "$(calc %.0f "$sat")" "$(calc %.2f "$sat / $dsat")"
	done <"$TMP/setups.tsv"
	cat <<EOF

Per process: vCPU is CPU seconds (user + system, all threads) over wall seconds; RSS is at the end of the $RATE rps phase, HWM the peak until then; the anonymous part excludes the executable's and libraries' mapped pages. The backend, a plain Go HTTP server, is there for reference: it is what a Go process costs on this machine at the same request rate without TLS or policy.

| run | setup | process | vCPU at $RATE rps | RSS MB | of which anonymous | HWM MB | context switches per request | vCPU at saturation |
|--:|---|---|--:|--:|--:|--:|--:|--:|
EOF
	awk -F'\t' '{printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7, $8, $9}' "$TMP/processes.tsv"

	cat <<EOF

### Against the anchors

Istio 1.20's published sidecar numbers: the two sidecars add 0.228 ms at p90 and 0.298 ms at p99 at 1,000 rps, and each uses 0.5 vCPU and about 50 MB. Palisade's targets at $RATE rps: added p90 < 0.2 ms, < 0.15 vCPU and < 30 MB RSS per proxy. HAProxy is held to the same targets to show what this machine allows.

| run | setup | added p90 ms (< 0.2) | added p99 ms (Istio: 0.298) | max vCPU per proxy (< 0.15; Istio: 0.5) | max RSS MB per proxy (< 30; Istio: ~50) |
|--:|---|--:|--:|--:|--:|
EOF
	while IFS=$'\t' read -r run setup p50 p90 p99 p999 errs sat rps; do
		if [[ $setup == direct ]]; then
			d90=$p90 d99=$p99
			continue
		fi
		vcpu=$(awk -F'\t' -v r="$run" -v s="$setup" '$1 == r && $2 == s && $3 ~ /proxy/ && $4 > m {m = $4} END {printf "%.3f", m}' "$TMP/processes.tsv")
		rssmax=$(awk -F'\t' -v r="$run" -v s="$setup" '$1 == r && $2 == s && $3 ~ /proxy/ && $5 > m {m = $5} END {printf "%.1f", m}' "$TMP/processes.tsv")
		printf '| %s | %s | %s %s | %s | %s %s | %s %s |\n' "$run" "$setup" \
			"$(ms "$p90 - $d90")" "$(verdict "($p90 - $d90) / 1000 < 0.2")" "$(ms "$p99 - $d99")" \
			"$vcpu" "$(verdict "$vcpu < 0.15")" "$rssmax" "$(verdict "$rssmax < 30")"
	done <"$TMP/setups.tsv"
}

report | tee "$RESULTS"
log "report written to $RESULTS"
