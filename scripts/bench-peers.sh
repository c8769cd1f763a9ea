#!/usr/bin/env bash
# bench-peers.sh compares ssekit with its peers, side by side, on this
# machine: each scenario against each server in turn, every server freshly
# started, the whole twice. It writes one ssebench JSON report per run,
# scenario and server under $OUT, then the tables (Markdown) and the charts
# (SVG) made from them.
#
#   scripts/bench-peers.sh                      # everything, twice
#   RUNS=1 SCENARIOS="sat1k" SERVERS="ssekit naive" scripts/bench-peers.sh
#   RUNS=1 C10K=500 C18K=900 SAT_SECS=3 DRAIN=3s scripts/bench-peers.sh  # a quick check
#
# Two kinds of scenario: broadcasts (every event to every stream) and
# targeted ones (tgt*: every event to one random connected user, each
# stream its own user, the generator checking that each delivery reaches
# exactly its user's streams). inproc* scenarios have the peer server
# publish the targeted events from inside its own process (library users
# call SendToUser there), so they run only on the peerserver-based servers.
#
# Settings (environment):
#   OUT        results directory          (bench/results/<UTC stamp>)
#   SVG        where the charts go         ($OUT; docs/ to refresh the doc's)
#   RUNS       repetitions                 (2)
#   SERVERS    ssekit ssehub naive r3labs tmaxmax alexandrevicenzi centrifugo
#              (ssehub only if cmd/ssehub exists); also, for a before/after,
#              ssekit-http (streams left on net/http) and ssekit-nodelay
#              (that, and WriteDelay off); ssekit-before with BEFORE;
#              floor (no library: what net/http costs per publish, with
#              nothing delivered: every event counts as lost)
#   BEFORE     a checkout of an earlier tree (git worktree add): its
#              library, built into its own peer server, runs as
#              ssekit-before, set up as ssekit is, for a before/after
#              side by side in one run
#   SCENARIOS  idle10k idle18k fan5 fan50 sat10k sat1k rate1k
#              tgt2k-10k tgt2k-sat
#              tgt10k-1k tgt10k-10k tgt10k-sat tgt18k-1k tgt18k-10k tgt18k-sat
#              inproc10k-100k inproc10k-sat
#   FAN5_COUNT events in the 5 events/s fan-out (200: 40 s)
#   SAT_SECS   saturation, 2,000 events/s and targeted durations, seconds (10)
#   INPROC_RATE  events/s of inproc10k-100k (100000)
#   BATCH      events per publish request in the targeted scenarios (1);
#              above 1 for the servers with a batch publish: centrifugo
#              (/api/batch), and ssehub (a JSON array posted to its
#              publish route; SSEHUB_BATCH_URL and SSEHUB_BATCH_BODY, with
#              {events} for the events' bodies joined by commas, override)
#   INPROC_PUBLISHERS  publishing goroutines inside the server (2: the cores)
#   CENTRIFUGO the centrifugo binary; by default the one in $PATH, else
#              built into $BIN with go install (about 90 s, then cached)
#   DRAIN      after publishing, how long to wait for late events (10s)
#   HUB_BUFFER ssekit's and ssehub's per-connection buffer (1024): their
#              queue grows on demand, so an idle connection pays nothing for
#              it, and at 10 (the default) any stall of 5 ms at 2,000
#              events/s ends the stream by design (OverflowDisconnect)
#   PORT       listen port of the servers  (8090)
#   C10K C18K C1K C2K  connection counts of the scenarios (10000 18000 1000 2000),
#              smaller for a quick check of the script
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$ROOT/bench/results/$(date -u +%Y%m%dT%H%M%SZ)}
SVG=${SVG:-$OUT}
RUNS=${RUNS:-2}
SCENARIOS=${SCENARIOS:-"idle10k idle18k fan5 fan50 sat10k sat1k rate1k tgt2k-10k tgt2k-sat tgt10k-1k tgt10k-10k tgt10k-sat tgt18k-1k tgt18k-10k tgt18k-sat inproc10k-100k inproc10k-sat"}
INPROC_RATE=${INPROC_RATE:-100000}
INPROC_PUBLISHERS=${INPROC_PUBLISHERS:-2}
FAN5_COUNT=${FAN5_COUNT:-200}
SAT_SECS=${SAT_SECS:-10}
PORT=${PORT:-8090}
C10K=${C10K:-10000}
C18K=${C18K:-18000}
C1K=${C1K:-1000}
C2K=${C2K:-2000}
DRAIN=${DRAIN:-10s}
HUB_BUFFER=${HUB_BUFFER:-1024}
BIN=$OUT/bin
if [[ -z ${SERVERS:-} ]]; then
	SERVERS="ssekit naive r3labs tmaxmax alexandrevicenzi centrifugo"
	[[ -d $ROOT/cmd/ssehub ]] && SERVERS="ssekit ssehub naive r3labs tmaxmax alexandrevicenzi centrifugo"
fi
# ssehub's secrets for the benchmark only (it insists on long ones). Its
# per-address rate limits are off: every stream comes from 127.0.0.x.
JWT_SECRET=ssebench-jwt-secret-0123456789abcdef0123456789
PUBLISH_KEY=ssebench-publish-key-0123456789abcdef012345
CENTRIFUGO_VERSION=v6.9.1

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
if [[ " $SERVERS " == *" centrifugo "* ]]; then
	CENTRIFUGO=${CENTRIFUGO:-$(command -v centrifugo || true)}
	if [[ -z $CENTRIFUGO ]]; then
		echo "building centrifugo $CENTRIFUGO_VERSION (go install; about 90 s the first time)"
		GOBIN=$BIN go install "github.com/centrifugal/centrifugo/v6@$CENTRIFUGO_VERSION"
		CENTRIFUGO=$BIN/centrifugo
	fi
	# Centrifugo v6 for this benchmark: the unidirectional SSE transport;
	# connection JWTs (HS256, sub = the user) whose "channels" claim
	# subscribes the stream to "bench" (broadcasts) on the server side;
	# every user subscribed to the personal channel "#<user>" (targeted
	# events); the HTTP API with a key. History is off (its default: no
	# history_size), as replay is off or absent for every peer; no
	# connection limits (0, its default, made explicit); the per-connection
	# queue at its default, 1 MiB (~7,000 bench events, more than ssekit's
	# 1,024); usage statistics off, so it never calls out.
	cat >"$OUT/centrifugo.json" <<-JSON
	{
	  "http_server": {"address": "127.0.0.1", "port": $PORT},
	  "log": {"level": "error"},
	  "usage_stats": {"disabled": true},
	  "client": {
	    "token": {"hmac_secret_key": "$JWT_SECRET"},
	    "subscribe_to_user_personal_channel": {"enabled": true},
	    "connection_limit": 0,
	    "user_connection_limit": 0,
	    "connection_rate_limit": 0,
	    "queue_max_size": 1048576
	  },
	  "uni_sse": {"enabled": true},
	  "http_api": {"key": "$PUBLISH_KEY"}
	}
	JSON
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

# kind SCENARIO: broadcast, targeted (HTTP publish to one user) or
# inproc (targeted, published inside the server).
kind() {
	case $1 in
	tgt*) echo targeted ;;
	inproc*) echo inproc ;;
	*) echo broadcast ;;
	esac
}

# supports SERVER SCENARIO: whether the server can run the scenario; the
# in-process publisher is peerserver's.
supports() {
	[[ $(kind "$2") != inproc ]] && return 0
	case $1 in ssehub | centrifugo) return 1 ;; esac
	return 0
}

# start_server NAME LOG KIND: starts the server, sets server_pid, and the
# stream and publish arguments for ssebench (for a scenario of KIND) in
# target_args.
start_server() {
	local name=$1 log=$2 kind=$3 base=http://127.0.0.1:$PORT pub=()
	# A peerserver's publish: broadcast, to one user, or in-process.
	case $kind in
	broadcast) pub=(-publish-url "$base/publish") ;;
	targeted) pub=(-targeted -publish-url "$base/publish?user={user}") ;;
	inproc) pub=(-targeted -publish-control "$base/control/publish") ;;
	esac
	case $name in
	ssehub)
		"$BIN/ssehub" --addr "127.0.0.1:$PORT" --jwt-secret "$JWT_SECRET" --publish-key "$PUBLISH_KEY" \
			--max-clients 0 --max-clients-per-user 0 --buffer-size "$HUB_BUFFER" \
			--stream-rate-ip 0 --stream-rate-user 0 --publish-rate-ip 0 --log-level warn >"$log" 2>&1 &
		target_args=(-url "$base/sse/stream?access_token={token}" -jwt-secret "$JWT_SECRET"
			-publish-url "$base/sse/publish" -publish-header "Authorization: Bearer $PUBLISH_KEY")
		if [[ $kind == targeted ]]; then
			target_args+=(-targeted -publish-body '{"users":["{user}"],"type":"bench","data":{payload}}')
			# The batch publish of issue 15: ssebench's -batch wraps the
			# same per-event bodies; only the URL and template are ssehub's.
			if ((${BATCH:-1} > 1)); then
				# A refused event is in the 200's results: the batch failed.
				target_args+=(-publish-url "${SSEHUB_BATCH_URL:-$base/sse/publish}" -batch "$BATCH" -batch-body "${SSEHUB_BATCH_BODY:-[{events\}]}"
					-publish-fail-on '"error"')
			fi
		else
			target_args+=(-publish-body '{"all":true,"type":"bench","data":{payload}}')
		fi
		;;
	centrifugo)
		"$CENTRIFUGO" --config "$OUT/centrifugo.json" >"$log" 2>&1 &
		# cf_connect={"token":"<JWT>"}, URL-encoded; the events arrive as
		# data: {"channel":"#<user>","pub":{"data":<payload>}}.
		target_args=(-url "$base/connection/uni_sse?cf_connect=%7B%22token%22%3A%22{token}%22%7D"
			-jwt-secret "$JWT_SECRET" -jwt-claims '"channels":["bench"]'
			-publish-url "$base/api/publish" -publish-header "X-API-Key: $PUBLISH_KEY" -publish-fail-on '"error"')
		if [[ $kind == targeted ]] && ((${BATCH:-1} > 1)); then
			target_args+=(-targeted -publish-url "$base/api/batch" -batch "$BATCH" -batch-body '{"commands":[{events}]}'
				-publish-body '{"publish":{"channel":"#{user}","data":{payload}}}')
		elif [[ $kind == targeted ]]; then
			target_args+=(-targeted -publish-body '{"channel":"#{user}","data":{payload}}')
		else
			target_args+=(-publish-body '{"channel":"bench","data":{payload}}')
		fi
		;;
	ssekit-before)
		"$BIN/peerserver-before" -impl ssekit -detach -addr "127.0.0.1:$PORT" -buffer "$HUB_BUFFER" -lifetime 10m >"$log" 2>&1 &
		target_args=(-url "$base/stream?user={user}" "${pub[@]}")
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
		target_args=(-url "$base/stream?user={user}" "${pub[@]}")
		;;
	*)
		# -buffer only matters to naive, which keeps the seed's 10. r3labs
		# gives each user a stream of its own in targeted runs (a
		# connection holds one stream).
		extra=()
		[[ $name == r3labs && $kind != broadcast ]] && extra=(-per-user-streams)
		"$BIN/peerserver" -impl "$name" "${extra[@]}" -addr "127.0.0.1:$PORT" -buffer 10 -lifetime 10m >"$log" 2>&1 &
		target_args=(-url "$base/stream?user={user}" "${pub[@]}")
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
	# Targeted: each stream its own user; each event to one random
	# connected user, at a fixed rate or as fast as accepted.
	tgt2k-10k) echo "-conns $C2K -rate 10000 -duration ${SAT_SECS}s -concurrency 32" ;;
	tgt2k-sat) echo "-conns $C2K -duration ${SAT_SECS}s -concurrency 32" ;;
	tgt10k-1k) echo "-conns $C10K -rate 1000 -duration ${SAT_SECS}s -concurrency 32" ;;
	tgt10k-10k) echo "-conns $C10K -rate 10000 -duration ${SAT_SECS}s -concurrency 32" ;;
	tgt10k-sat) echo "-conns $C10K -duration ${SAT_SECS}s -concurrency 32" ;;
	tgt18k-1k) echo "-conns $C18K -rate 1000 -duration ${SAT_SECS}s -concurrency 32" ;;
	tgt18k-10k) echo "-conns $C18K -rate 10000 -duration ${SAT_SECS}s -concurrency 32" ;;
	tgt18k-sat) echo "-conns $C18K -duration ${SAT_SECS}s -concurrency 32" ;;
	# In-process: the server's own goroutines publish (SendToUser).
	inproc10k-100k) echo "-conns $C10K -rate $INPROC_RATE -duration ${SAT_SECS}s -concurrency $INPROC_PUBLISHERS" ;;
	inproc10k-sat) echo "-conns $C10K -duration ${SAT_SECS}s -concurrency $INPROC_PUBLISHERS" ;;
	*) echo "unknown scenario $1" >&2; return 1 ;;
	esac
}

start=$(date +%s)
for run in $(seq "$RUNS"); do
	for sc in $SCENARIOS; do
		args=$(scenario_args "$sc")
		mkdir -p "$OUT/run$run/$sc" "$OUT/logs"
		for srv in $SERVERS; do
			supports "$srv" "$sc" || continue
			log=$OUT/logs/run$run-$sc-$srv
			echo "$(date -u +%T) run $run $sc $srv  load: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/uptime.log"
			start_server "$srv" "$log.server.log" "$(kind "$sc")"
			# shellcheck disable=SC2086 # $args is a list of flags
			if ! "$BIN/ssebench" -label "$srv $sc run $run" "${target_args[@]}" -idle-wait 2s -drain "$DRAIN" $args \
				-pid "$server_pid" -json "$OUT/run$run/$sc/$srv.json" -max-duration 5m >"$log.txt" 2>&1; then
				echo "  ssebench failed: see $log.txt" | tee -a "$OUT/uptime.log"
			fi
			grep -E '^(publish|delivery|server|latency)' "$log.txt" | sed 's/^/  /' || true
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
