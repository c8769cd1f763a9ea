#!/usr/bin/env bash
# chaos.sh checks ssehub's delivery promise in cluster mode under faults:
# it builds ssehub and runs bench/chaos, which starts its own Redis on free
# loopback ports (never the shared one on 6379) — one redis-server, or a
# Redis Cluster of 3 masters with a replica each — and 3 nodes on it,
# connects clients that reconnect with Last-Event-ID, publishes (half to
# everyone, half to one user; each publish under its own Idempotency-Key,
# retried with it on another node on any doubt) while breaking things,
# ends every channel with an end marker, and accounts per channel for
# every event addressed to every client: delivered exactly once and in
# order, resynced (announced) or lost — lost must be 0, and so must the
# unattributed deliveries (a publish stored twice, a copy the publisher
# has no id for). It writes the summary (Markdown + JSON) under $OUT,
# named after what ran unless NAME is set.
#
#   CLIENTS=1000 DURATION=60s scripts/chaos.sh                  # one Redis (persistent): node kill -9, Redis restarts
#   CLIENTS=1000 DURATION=60s REDIS=cluster scripts/chaos.sh    # Redis Cluster: node kill -9, master failover + restart
#   STORM=1 CLIENTS=10000 REDIS=cluster scripts/chaos.sh        # resume storm: 1 node of 3 killed for good
#   CLIENTS=300 DURATION=40s scripts/chaos.sh                   # a quick check
#
# Settings (environment):
#   REDIS          one (a redis-server) or cluster (a Redis Cluster)        [one]
#   WAIT_REPLICAS  cluster: publishes acknowledged once this many replicas
#                  hold them (--redis-wait-replicas); without it a master's
#                  crash may lose events it had acknowledged              [1 with cluster]
#   PERSIST        true: Redis keeps its data on disk, so a restart keeps
#                  the history; false: a restart empties it                 [true]
#   STORM          1: resume storm instead of chaos                         [off]
#   CLIENTS (2000; storm 10000), USERS (500; storm CLIENTS/2), NODES (3),
#   DURATION (2m, chaos), RATE (20 events/s), KILL_EVERY (10s),
#   REDIS_EVERY (15s: restart Redis, or fail a master over, alternately the
#   master of everyone's channel and a random one), DOWN (3s), DRAIN (90s),
#   WARMUP (10s, storm), SOURCES (1: loopback source addresses for the
#   clients' dials), OUT (bench/chaos/results), NAME (the summary's name),
#   LOSE_EVERY (0; N: for about one publish in N the publisher drops the
#   answer to the first attempt, which the hub stored, and retries: each
#   retry must be answered as a replay; faults rarely cut one in flight).
# The whole run is bounded by `timeout` (TIMEOUT, 20m).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$ROOT/bench/chaos/results}
REDIS=${REDIS:-one}
case ${STORM:-} in 1 | true | yes) STORM=true ;; *) STORM=false ;; esac
PERSIST=${PERSIST:-true}
if [[ $REDIS == cluster ]]; then
	WAIT_REPLICAS=${WAIT_REPLICAS:-1}
else
	WAIT_REPLICAS=${WAIT_REPLICAS:-0}
fi
if [[ $STORM == true ]]; then
	CLIENTS=${CLIENTS:-10000}
	USERS=${USERS:-$((CLIENTS / 2))}
else
	CLIENTS=${CLIENTS:-2000}
	USERS=${USERS:-500}
fi
DURATION=${DURATION:-2m}

# The name says what ran, e.g. chaos-one-persist-1000c-60s,
# chaos-cluster-persist-wait1-1000c-60s, storm-cluster-persist-wait1-10000c.
store=$REDIS-$([[ $PERSIST == true ]] && echo persist || echo nopersist)
[[ $WAIT_REPLICAS != 0 ]] && store+=-wait$WAIT_REPLICAS
if [[ $STORM == true ]]; then
	NAME=${NAME:-storm-$store-${CLIENTS}c}
else
	NAME=${NAME:-chaos-$store-${CLIENTS}c-$DURATION}
fi

BIN=$(mktemp -d)
trap 'rm -rf "$BIN"' EXIT
(cd "$ROOT" && go build -o "$BIN/ssehub" ./cmd/ssehub && go build -o "$BIN/chaos" ./bench/chaos)
mkdir -p "$OUT"
# chaos stops every process it started before it returns (and the kernel
# kills them if it dies); timeout bounds the whole run in case it cannot.
timeout --signal=INT --kill-after=30s "${TIMEOUT:-20m}" "$BIN/chaos" -ssehub "$BIN/ssehub" \
	-redis "$REDIS" -wait-replicas "$WAIT_REPLICAS" -persist="$PERSIST" -storm="$STORM" \
	-clients "$CLIENTS" -users "$USERS" -nodes "${NODES:-3}" \
	-duration "$DURATION" -rate "${RATE:-20}" -warmup "${WARMUP:-10s}" \
	-kill-every "${KILL_EVERY:-10s}" -redis-every "${REDIS_EVERY:-15s}" -down "${DOWN:-3s}" -drain "${DRAIN:-90s}" \
	-sources "${SOURCES:-1}" -lose-every "${LOSE_EVERY:-0}" -summary "$OUT/$NAME"
