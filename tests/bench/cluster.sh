#!/usr/bin/env bash
# Three brokers: chronik vs Apache Kafka 4.4, replication factor 3 (issue 18). Three chronik
# nodes, then three Kafka KRaft nodes (each a broker and a controller voter), alternating for
# ROUNDS rounds; prints one table and writes it as JSON. See docs/performance.md, "Three brokers".
#
#   tests/bench/cluster.sh                                   full run (~14 min on 2 cores)
#   ROUNDS=1 RECORDS=20000 WARMUP_SECONDS=0 LAT_SECONDS=3 FAILOVERS=1 tests/bench/cluster.sh   smoke run (~2 min)
#   tests/bench/cluster.sh report [FILE.json]               print the table of an earlier run again
#
# Environment (defaults in brackets):
#   ROUNDS [2]  BROKERS ["chronik kafka"]   rounds, and the order within one
#   RECORDS [200000]  RECORD_SIZE [1024]  PARTITIONS ["3 1"]   ProducerPerformance runs (acks=all,
#                         unthrottled) per round, one topic per partition count; PP_WARMUP [0.1]
#                         share of the records its steady-state figures leave out
#   WARMUP_SECONDS [180] WARMUP_CHUNK [100000] WARMUP_TOLERANCE [0.1] WARMUP_MIN_RUNS [3]
#                         unmeasured warm-up of each fresh cluster: unthrottled runs of WARMUP_CHUNK
#                         records on new topics, partition counts taking turns, until each count had
#                         WARMUP_MIN_RUNS runs and its last two rates agree within the tolerance, or
#                         the time is up (Kafka's three JVMs on one core need minutes of load)
#   LAT_RATE [5000] LAT_SECONDS [10] LAT_WARMUP [2]  fixed-rate latency run (0 s: skip)
#   FAILOVERS [3] FAILOVER_RATE [500] FAILOVER_TIMEOUT [60]  failover repetitions per round, the
#                         producer's records/s, seconds to wait for an acknowledgement after the kill
#   FAILOVER_KILL_CONTROLLER [0]  1: kill the controller leader (also the partition leader) instead
#                         of a node that only leads the partition
#   SESSION_TIMEOUT_MS [6000] HEARTBEAT_MS [2000] REPLICA_LAG_MS [30000]   the same for both:
#                         Kafka broker.session.timeout.ms, broker.heartbeat.interval.ms,
#                         replica.lag.time.max.ms; chronik CHRONIK_CLUSTER_SESSION_TIMEOUT_MS,
#                         _BROKER_HEARTBEAT_MS, _REPLICA_LAG_TIME_MAX_MS
#   CHRONIK_BIN_PATH [/tmp/bench-bin/chronik]   the broker binary (this script never builds it)
#   BENCH_DIR [/var/tmp/chronik-bench]   data and logs (run directory cluster-DATE-TIME; data
#                         deleted after each cluster unless KEEP_DATA=1, logs kept)
#   CLUSTER_BENCH_PORT [19200]   chronik Kafka ports +0..2, controller +10..12; Kafka +20..22, +30..32
#   BROKER_CPU [0] LOAD_CPU [1]   taskset cores of the three brokers and of every load generator
#   LOAD_TIMEOUT [300] START_TIMEOUT [120] ISR_TIMEOUT [120] TOTAL_TIMEOUT [1800]   bounds in s
#   KAFKA_HEAP [1g]   each Kafka node's -Xmx (-Xms256m, G1, as tests/kafka/kafka.sh)
#   OUT [tests/bench/results/cluster-latest.json]  LABEL  free text stored with the results
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
export CHRONIK_TEST_CACHE=${CHRONIK_TEST_CACHE:-$HOME/.cache/chronik-tests}
CACHE=$CHRONIK_TEST_CACHE
PY=$CACHE/venv/bin/python

if [[ ${1:-} == report ]]; then
    shift
    exec "$PY" "$HERE/cluster_bench.py" report "$@"
fi

if [[ ! -x $PY || ! -s $CACHE/kafka-cli.classpath || ! -f $CACHE/kafka-${KAFKA_VERSION:-4.4.0}/libs/.complete ]]; then
    echo "== cluster bench: tests/setup/setup.sh (venv, Kafka jars, CLI classpath)"
    "$ROOT/tests/setup/setup.sh"
fi
command -v taskset >/dev/null || { echo "cluster bench: taskset (util-linux) is required" >&2; exit 1; }

export CHRONIK_BIN_PATH=${CHRONIK_BIN_PATH:-/tmp/bench-bin/chronik}
[[ -x $CHRONIK_BIN_PATH ]] || {
    echo "cluster bench: no broker binary at $CHRONIK_BIN_PATH; build one (cargo build --release) and" \
        "copy it there or set CHRONIK_BIN_PATH" >&2
    exit 1
}

if (($(nproc) >= 2)); then
    exec taskset -c "${LOAD_CPU:-1}" "$PY" "$HERE/cluster_bench.py" run
fi
exec "$PY" "$HERE/cluster_bench.py" run
