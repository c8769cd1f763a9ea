#!/usr/bin/env bash
# bench-peers.sh compares ssekit with its peers, side by side, on this
# machine: each scenario against each server in turn, every server freshly
# started, the whole twice. It writes one ssebench JSON report per run,
# scenario and server under $OUT, then the tables (Markdown) and the charts
# (SVG) made from them.
#
#   scripts/bench-peers.sh                      # everything, twice
#   RUNS=1 SCENARIOS="sat1k" SERVERS="ssekit naive" scripts/bench-peers.sh
#
# Settings (environment):
#   OUT        results directory          (bench/results/<UTC stamp>)
#   SVG        where the charts go         ($OUT; docs/ to refresh the doc's)
#   RUNS       repetitions                 (2)
#   SERVERS    ssekit ssehub naive r3labs tmaxmax alexandrevicenzi (ssehub
#              only if cmd/ssehub exists); also, for a before/after,
#              ssekit-http (streams left on net/http) and ssekit-nodelay
#              (that, and WriteDelay off); ssekit-before with BEFORE
#   BEFORE     a checkout of an earlier tree (git worktree add): its
#              library, built into its own peer server, runs as
#              ssekit-before, set up as ssekit is, for a before/after
#              side by side in one run
#   SCENARIOS  idle10k idle18k fan5 fan50 sat10k sat1k rate1k
#   FAN5_COUNT events in the 5 events/s fan-out (200: 40 s)
#   SAT_SECS   saturation and 2,000 events/s durations, seconds (10)
#   DRAIN      after publishing, how long to wait for late events (10s)
#   HUB_BUFFER ssekit's and ssehub's per-connection buffer (1024): their
#              queue grows on demand, so an idle connection pays nothing for
#              it, and at 10 (the default) any stall of 5 ms at 2,000
#              events/s ends the stream by design (OverflowDisconnect)
#   PORT       listen port of the servers  (8090)
#   C10K C18K C1K  connection counts of the scenarios (10000 18000 1000),
#              smaller for a quick check of the script
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$ROOT/bench/results/$(date -u +%Y%m%dT%H%M%SZ)}
SVG=${SVG:-$OUT}
RUNS=${RUNS:-2}
SCENARIOS=${SCENARIOS:-"idle10k idle18k fan5 fan50 sat10k sat1k rate1k"}
FAN5_COUNT=${FAN5_COUNT:-200}
SAT_SECS=${SAT_SECS:-10}
PORT=${PORT:-8090}
C10K=${C10K:-10000}
C18K=${C18K:-18000}
C1K=${C1K:-1000}
DRAIN=${DRAIN:-10s}
HUB_BUFFER=${HUB_BUFFER:-1024}
BIN=$OUT/bin
if [[ -z ${SERVERS:-} ]]; then
	SERVERS="ssekit naive r3labs tmaxmax alexandrevicenzi"
	[[ -d $ROOT/cmd/ssehub ]] && SERVERS="ssekit ssehub naive r3labs tmaxmax alexandrevicenzi"
fi
# ssehub's secrets for the benchmark only (it insists on long ones). Its
# per-address rate limits are off: every stream comes from 127.0.0.x.
JWT_SECRET=ssebench-jwt-secret-0123456789abcdef0123456789
PUBLISH_KEY=ssebench-publish-key-0123456789abcdef012345

mkdir -p "$BIN"
echo "building into $BIN"
(cd "$ROOT" && go build -o "$BIN/ssebench" ./cmd/ssebench)
(cd "$ROOT/bench/peers" && go build -o "$BIN/peerserver" ./peerserver && go build -o "$BIN/benchreport" ./benchreport)
if [[ " $SERVERS " == *" ssekit-before "* ]]; then
	[[ -n ${BEFORE:-} ]] || { echo "ssekit-before needs BEFORE=<checkout of the earlier tree>" >&2; exit 1; }
	(cd "$BEFORE/bench/peers" && go build -o "$BIN/peerserver-before" ./peerserver)
fi
if [[ " $SERVERS " == *" ssehub "* ]]; then
	(cd "$ROOT" && go build -o "$BIN/ssehub" ./cmd/ssehub)
fi

# The generator and the servers each need up to ~18,000 descriptors.
ulimit -n 20000

server_pid=""
stop_server() {
	[[ -z $server_pid ]] && return
	kill -TERM "$server_pid" 2>/dev/null || true
	for _ in $(seq 50); do
		kill -0 "$server_pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$server_pid" 2>/dev/null || true
	wait "$server_pid" 2>/dev/null || true
	server_pid=""
}
trap stop_server EXIT

# start_server NAME LOG: starts the server, sets server_pid, and the
# stream and publish arguments for ssebench in target_args.
start_server() {
	local name=$1 log=$2 base=http://127.0.0.1:$PORT
	case $name in
	ssehub)
		"$BIN/ssehub" --addr "127.0.0.1:$PORT" --jwt-secret "$JWT_SECRET" --publish-key "$PUBLISH_KEY" \
			--max-clients 0 --max-clients-per-user 0 --buffer-size "$HUB_BUFFER" \
			--stream-rate-ip 0 --stream-rate-user 0 --publish-rate-ip 0 --log-level warn >"$log" 2>&1 &
		target_args=(-url "$base/sse/stream?access_token={token}" -jwt-secret "$JWT_SECRET"
			-publish-url "$base/sse/publish" -publish-header "Authorization: Bearer $PUBLISH_KEY"
			-publish-body '{"all":true,"type":"bench","data":{payload}}')
		;;
	ssekit-before)
		"$BIN/peerserver-before" -impl ssekit -detach -addr "127.0.0.1:$PORT" -buffer "$HUB_BUFFER" -lifetime 10m >"$log" 2>&1 &
		target_args=(-url "$base/stream?user={user}" -publish-url "$base/publish")
		;;
	ssekit | ssekit-http | ssekit-nodelay)
		# ssekit: the library set up as ssehub sets it up (streams detached
		# from net/http, WriteDelay at its default); ssekit-http: with its
		# streams left on net/http (the library's default); ssekit-nodelay:
		# that, and every event waking its stream (the hub before WriteDelay).
		extra=(-detach)
		[[ $name == ssekit-http ]] && extra=()
		[[ $name == ssekit-nodelay ]] && extra=(-write-delay -1ns)
		"$BIN/peerserver" -impl ssekit "${extra[@]}" -addr "127.0.0.1:$PORT" -buffer "$HUB_BUFFER" -lifetime 10m >"$log" 2>&1 &
		target_args=(-url "$base/stream?user={user}" -publish-url "$base/publish")
		;;
	*)
		# -buffer only matters to naive, which keeps the seed's 10.
		"$BIN/peerserver" -impl "$name" -addr "127.0.0.1:$PORT" -buffer 10 -lifetime 10m >"$log" 2>&1 &
		target_args=(-url "$base/stream?user={user}" -publish-url "$base/publish")
		;;
	esac
	server_pid=$!
}

# scenario_args NAME: the ssebench arguments of a scenario. Publishers wait
# for each answer; 32 of them keep enough publishes in flight that the
# server, not one publisher's round trip, sets the pace (with 2, a busy
# server's 15 ms round trip capped "2,000 events/s" at ~130).
scenario_args() {
	case $1 in
	idle10k) echo "-conns $C10K -idle-wait 3s" ;;
	idle18k) echo "-conns $C18K -idle-wait 3s" ;;
	fan5) echo "-conns $C10K -rate 5 -count $FAN5_COUNT -concurrency 32" ;;
	fan50) echo "-conns $C10K -rate 50 -count 200 -concurrency 32" ;;
	sat10k) echo "-conns $C10K -duration ${SAT_SECS}s -concurrency 32" ;;
	sat1k) echo "-conns $C1K -duration ${SAT_SECS}s -concurrency 32" ;;
	rate1k) echo "-conns $C1K -rate 2000 -duration ${SAT_SECS}s -concurrency 32" ;;
	*) echo "unknown scenario $1" >&2; return 1 ;;
	esac
}

start=$(date +%s)
for run in $(seq "$RUNS"); do
	for sc in $SCENARIOS; do
		args=$(scenario_args "$sc")
		mkdir -p "$OUT/run$run/$sc" "$OUT/logs"
		for srv in $SERVERS; do
			log=$OUT/logs/run$run-$sc-$srv
			echo "$(date -u +%T) run $run $sc $srv  load: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/uptime.log"
			start_server "$srv" "$log.server.log"
			# shellcheck disable=SC2086 # $args is a list of flags
			if ! "$BIN/ssebench" -label "$srv $sc run $run" "${target_args[@]}" -idle-wait 2s -drain "$DRAIN" $args \
				-pid "$server_pid" -json "$OUT/run$run/$sc/$srv.json" -max-duration 5m >"$log.txt" 2>&1; then
				echo "  ssebench failed: see $log.txt" | tee -a "$OUT/uptime.log"
			fi
			grep -E '^(delivery|server|latency)' "$log.txt" | sed 's/^/  /' || true
			stop_server
			sleep 1
		done
	done
done
echo "total $(( $(date +%s) - start ))s" | tee -a "$OUT/uptime.log"

mkdir -p "$SVG"
"$BIN/benchreport" -in "$OUT" -svg "$SVG" >"$OUT/tables.md"
echo "tables: $OUT/tables.md; charts: $SVG/perf-*.svg"
rm -rf "$BIN"
