#!/usr/bin/env bash
# soak.sh holds many streams open on a fresh ssehub for a long time, with a
# steady publish rate and churn, samples the hub's RSS, goroutines and open
# descriptors every few seconds, and checks that no client sees a gap or a
# duplicate and that the hub comes back to its idle baseline afterwards
# (bench/soak does the work). It writes the summary (Markdown + JSON, no raw
# samples) under $OUT and the plot to $SVG.
#
#   scripts/soak.sh                                  # 10,000 streams, 10 minutes
#   CONNS=500 DURATION=1m scripts/soak.sh            # a quick check
#
# Settings (environment):
#   CONNS     streams held                       (10000)
#   PROCS     generator processes                (2: each holds CONNS/PROCS)
#   DURATION  publishing time                    (10m)
#   RATE      broadcast events per second        (5)
#   CHURN     streams closed and reopened per s  (20)
#   SAMPLE    sampling interval                  (5s)
#   PORT      the hub's loopback port            (18080)
#   OUT       summary directory                  (bench/soak/results)
#   SVG       plot                               (docs/soak.svg)
#
# Everything listens and connects on 127.0.0.0/8 only. The hub is stopped
# on exit, whatever happens; the generators exit with the coordinator.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CONNS=${CONNS:-10000}
PROCS=${PROCS:-2}
DURATION=${DURATION:-10m}
RATE=${RATE:-5}
CHURN=${CHURN:-20}
SAMPLE=${SAMPLE:-5s}
PORT=${PORT:-18080}
OUT=${OUT:-$ROOT/bench/soak/results}
SVG=${SVG:-$ROOT/docs/soak.svg}

if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
	echo "soak: port $PORT is in use; set PORT" >&2
	exit 1
fi

BIN=$(mktemp -d)
HUB_PID=
cleanup() {
	if [[ -n $HUB_PID ]] && kill -0 "$HUB_PID" 2>/dev/null; then
		kill -TERM "$HUB_PID" 2>/dev/null || true
		for _ in $(seq 100); do kill -0 "$HUB_PID" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$HUB_PID" 2>/dev/null || true
	fi
	rm -rf "$BIN"
}
trap cleanup EXIT

(cd "$ROOT" && go build -o "$BIN/ssehub" ./cmd/ssehub && go build -o "$BIN/soak" ./bench/soak)

# Secrets for this run only.
export SSEHUB_JWT_SECRET="soak-$(head -c 24 /dev/urandom | base64 | tr -d '/+=')-secret-padding"
export SSEHUB_PUBLISH_KEY="soak-$(head -c 12 /dev/urandom | base64 | tr -d '/+=')"

# No connection caps (the run holds CONNS streams, one user each), and the
# rate limits raised but on, so that their code path is part of the soak.
"$BIN/ssehub" --addr "127.0.0.1:$PORT" --max-clients 0 --max-clients-per-user 0 \
	--stream-rate-ip 2000 --stream-burst-ip 4000 --publish-rate-ip 0 \
	--log-level warn --log-format json 2>"$BIN/hub.log" &
HUB_PID=$!

mkdir -p "$OUT" "$(dirname "$SVG")"
status=0
"$BIN/soak" -hub "http://127.0.0.1:$PORT" -conns "$CONNS" -procs "$PROCS" -duration "$DURATION" \
	-rate "$RATE" -churn "$CHURN" -sample "$SAMPLE" -svg "$SVG" -summary "$OUT/soak-summary" \
	-label "$CONNS streams × $DURATION" || status=$?

if [[ -s $BIN/hub.log ]]; then
	echo "soak: the hub's warnings (last 20 lines):" >&2
	tail -n 20 "$BIN/hub.log" >&2
fi
exit $status
