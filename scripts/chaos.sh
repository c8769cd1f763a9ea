#!/usr/bin/env bash
# chaos.sh checks ssehub's delivery promise in cluster mode under faults:
# it builds ssehub and runs bench/chaos, which starts its own redis-server
# on a free loopback port (never the shared one on 6379) and 3 nodes on it,
# connects a few thousand clients that reconnect to a random live node,
# kills -9 and restarts nodes and restarts Redis while publishing, and then
# accounts for every event addressed to every client: delivered exactly
# once and in order, resynced (announced) or lost — lost must be 0. It
# writes the summary (Markdown + JSON) under $OUT.
#
#   scripts/chaos.sh                                # 2,000 clients, 2 minutes
#   CLIENTS=300 DURATION=40s scripts/chaos.sh       # a quick check
#
# Settings (environment): CLIENTS (2000), USERS (500), NODES (3),
# DURATION (2m), RATE (20 events/s), KILL_EVERY (10s), REDIS_EVERY (35s),
# PERSIST (true: Redis keeps its history across a restart; false: a restart
# empties it, and clients that resume across it must get a resync),
# OUT (bench/chaos/results), NAME (chaos-summary: the summary's file name).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$ROOT/bench/chaos/results}
BIN=$(mktemp -d)
trap 'rm -rf "$BIN"' EXIT

(cd "$ROOT" && go build -o "$BIN/ssehub" ./cmd/ssehub && go build -o "$BIN/chaos" ./bench/chaos)
mkdir -p "$OUT"
# chaos stops every process it started before it returns; timeout bounds
# the whole run in case it cannot.
timeout --signal=INT --kill-after=30s 20m "$BIN/chaos" -ssehub "$BIN/ssehub" \
	-clients "${CLIENTS:-2000}" -users "${USERS:-500}" -nodes "${NODES:-3}" \
	-duration "${DURATION:-2m}" -rate "${RATE:-20}" \
	-kill-every "${KILL_EVERY:-10s}" -redis-every "${REDIS_EVERY:-35s}" \
	-persist="${PERSIST:-true}" -summary "$OUT/${NAME:-chaos-summary}"
