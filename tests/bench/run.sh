#!/usr/bin/env bash
# Chronik vs Apache Kafka benchmark (issue 3): machine limits, then both brokers alternating
# A B A B ... for ROUNDS rounds; prints one table and writes it as JSON. See docs/performance.md.
#
#   tests/bench/run.sh                          full run (~15 min on 2 cores)
#   ROUNDS=1 RECORDS=200000 LAT_SECONDS=8 tests/bench/run.sh      smoke run
#   tests/bench/run.sh report [FILE.json]      print the table of an earlier run again
#
# Environment (defaults in brackets):
#   ROUNDS [3]            rounds; every round runs each broker once, fresh data directory each time
#   RECORDS [1000000]     records per W1 throughput run (also what W4 reads back)
#   RECORD_SIZE [1024]    bytes per record
#   SCENARIOS [limits,w1,w2,w3,w4,restart,w5]   subset to run (comma or space separated)
#   W5_MB [1000] ...      W5 (remote tier on LocalStack, chronik only): see W5 in bench.py and
#                         docs/performance.md; LocalStack on BENCH_PORT+30 (W5_S3_PORT)
#   search (opt-in, chronik only: SCENARIOS=search): indexing throughput, produce latency with
#                         search, queries over remote splits cold and warm, freshness; see
#                         tests/bench/search_bench.py and docs/performance.md, "Search (issue 7)".
#                         Smoke run (~1 min): SCENARIOS=search SEARCH_RECORDS=200000
#                         SEARCH_PRODUCE_RECORDS=200000 SEARCH_LAT_SECONDS=5 SEARCH_LAT_WARMUP=1
#                         SEARCH_FRESH_RECORDS=50 tests/bench/run.sh
#   SEARCH_RECORDS [10000000]     ~100 B records in the remote-split topic (LocalStack as W5)
#   SEARCH_SEGMENT_BYTES [auto]   its segment.bytes: 64 MiB, less below ~5M records (~16 segments)
#   SEARCH_PRODUCE_RECORDS [1000000]  200-500 B text records per produce run without / with search
#   SEARCH_LAT_SECONDS [20] SEARCH_LAT_WARMUP [3]  produce-latency runs at SEARCH_RATE [0 = half
#                         the no-search produce rate], without and with search, by SEARCH_LAT_TOOL
#                         [rdkafka: tests/bench/rdkafka_latency.py; producer-perf: ProducerPerformance]
#   SEARCH_FRESH_RECORDS [200] SEARCH_FRESH_RATE [20]  freshness probes and their rate per second
#   SEARCH_WARM_RUNS [5]  warm runs of every query    SEARCH_PARTITIONS [1]  partitions per topic
#   SEARCH_INDEX_TIMEOUT [1800]  s to wait for lag 0 / uploads   SEARCH_QUERY_TIMEOUT [60]  s per query
#   SEARCH_DROP_CACHES [1]  a cold query also drops page caches (root only)
#   SEARCH_STEPS [index,latency,freshness,remote]   subset of the search steps
#   SEARCH_STALL_TIMEOUT [120]  fail when records wait but no searchable offset moves for this long
#   SEARCH_BROKER_ENV [""]  extra broker settings for the search broker, "CHRONIK_X=1 CHRONIK_Y=2"
#   SEARCH_SPILL_CPUS [the load core when pinned; "" never]  [search] spill_cpus of that broker
#   SEARCH_INDEX_CPUS [unset: the broker's core]  its [search] index_cpus
#   BROKERS ["chronik kafka"]        order within a round; "chronik-base" adds another Chronik build
#                         (CHRONIK_BASE_BIN_PATH, e.g. the commit before a change) with its own
#                         ratio column: SCENARIOS=w1,w4 BROKERS="chronik chronik-base kafka" ...
#   LAT_SECONDS [20] LAT_WARMUP [3]  W2/W3 duration and excluded warm-up at the fixed rate
#   RATE [0]              fixed rate of W2/W3 in records/s; 0 = half of Kafka's W1 1-partition rate
#   W1_PARTITIONS ["1 16"]   W1_WARMUP [0.1]  share of W1 records ProducerPerformance treats as warm-up
#   BROKER_WARMUP_RECORDS [RECORDS/2]     unmeasured produce on the fresh broker before W2/W3
#   BENCH_DIR [/var/tmp/chronik-bench]   data directory of both brokers and of fio (same disk)
#   BENCH_PORT [19092]    chronik listens on it, Kafka on +10 (controller +11), iperf3 on +20
#   FIO_SIZE [2G] FIO_SECONDS [10] IPERF_SECONDS [5]
#   BROKER_CPU [0] LOAD_CPU [1]      taskset cores (pinning only with 2 cores or more)
#   OUT [tests/bench/results/latest.json]   LABEL  free text stored with the results
#   BENCH_SETUP [auto]    1 = always run tests/setup/setup.sh, 0 = never, auto = when something is missing
#   BENCH_BUILD [1]       0 = use the existing release binary (CHRONIK_BIN_PATH or
#                         $CARGO_TARGET_DIR/release/chronik)
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
export CHRONIK_TEST_CACHE=${CHRONIK_TEST_CACHE:-$HOME/.cache/chronik-tests}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/chronik-target}
CACHE=$CHRONIK_TEST_CACHE
PY=$CACHE/venv/bin/python

if [[ ${1:-} == report ]]; then
    shift
    exec "$PY" "$HERE/bench.py" report "$@"
fi

step() { printf '\n== bench: %s\n' "$*"; }

# --- tools ---------------------------------------------------------------------------------------
step "tools"
need=()
command -v fio >/dev/null || need+=(fio)
command -v iperf3 >/dev/null || need+=(iperf3)
command -v taskset >/dev/null || need+=(util-linux)
if ((${#need[@]})); then
    SUDO=
    [[ $(id -u) == 0 ]] || SUDO=sudo
    echo "installing: ${need[*]}"
    $SUDO apt-get update -q
    # iperf3's package asks whether to start a daemon; answer no.
    echo "iperf3 iperf3/start_daemon boolean false" | $SUDO debconf-set-selections 2>/dev/null || true
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${need[@]}"
fi
echo "fio $(fio --version), $(iperf3 --version | head -1)"

setup=${BENCH_SETUP:-auto}
if [[ $setup == auto ]]; then
    setup=0
    [[ -x $PY && -s $CACHE/kafka-cli.classpath ]] || setup=1
    [[ -f $CACHE/kafka-${KAFKA_VERSION:-4.4.0}/libs/.complete ]] || setup=1
fi
if [[ $setup == 1 ]]; then
    step "tests/setup/setup.sh (venv, Kafka jars, CLI classpath)"
    "$ROOT/tests/setup/setup.sh"
fi

# Our end-to-end latency tool, compiled against the kafka-clients jar of the CLI classpath.
classes=$CACHE/bench-classes
src=$HERE/E2eLatency.java
if [[ ! -f $classes/E2eLatency.class || $src -nt $classes/E2eLatency.class ]]; then
    mkdir -p "$classes"
    javac -d "$classes" -cp "$(cat "$CACHE/kafka-cli.classpath")" "$src"
fi

# --- broker binary -------------------------------------------------------------------------------
if [[ ${BENCH_BUILD:-1} == 1 && -z ${CHRONIK_BIN_PATH:-} ]]; then
    step "cargo build --release"
    (cd "$ROOT" && cargo build --release --quiet)
fi
BIN=${CHRONIK_BIN_PATH:-$CARGO_TARGET_DIR/release/chronik}
[[ -x $BIN ]] || { echo "bench: no broker binary at $BIN" >&2; exit 1; }
export CHRONIK_BIN_PATH=$BIN

# --- run -----------------------------------------------------------------------------------------
step "benchmark"
if (($(nproc) >= 2)); then
    exec taskset -c "${LOAD_CPU:-1}" "$PY" "$HERE/bench.py" run
fi
exec "$PY" "$HERE/bench.py" run
