#!/usr/bin/env bash
# The one test entry point (CI runs exactly this with CI=true).
#
#   tests/run.sh                  setup + cargo build/test + every client suite against chronik
#   tests/run.sh setup            install the clients and tools only (idempotent)
#   tests/run.sh build            cargo build --release && cargo test --release
#   tests/run.sh compat [SUITE…]  client suites against $BOOTSTRAP if set, else against a broker
#                                 started here (chronik, or Apache Kafka with --against-kafka)
#   tests/run.sh --against-kafka [PHASE…]   same, against the reference Apache Kafka; no cargo
#
# Suites (tests/compat/<suite>.sh, each runnable alone with BOOTSTRAP=host:port):
#   kcat confluent kafka-python java kafka-cli franz-go kgo search crash reliability cluster security
#   deploy fuzz
#   (kgo: franz-go's own pkg/kgo tests; tests/compat/kgo-allowlist.txt skips some against chronik)
#
# Environment: TARGET=chronik|kafka, TEST_PORT (default 29092; Kafka's controller uses +1),
# BOOTSTRAP (use a running broker), CARGO_TARGET_DIR (default ~/.cache/chronik-target),
# CHRONIK_TEST_CACHE (default ~/.cache/chronik-tests), SUITES (default: all of the above),
# LOCALSTACK_PORT (default 4566: the LocalStack S3 that is chronik's remote tier here).
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CHRONIK_TEST_CACHE=${CHRONIK_TEST_CACHE:-$HOME/.cache/chronik-tests}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/chronik-target}
TARGET=${TARGET:-chronik}
TEST_PORT=${TEST_PORT:-29092}
ALL_SUITES=(kcat confluent kafka-python java kafka-cli franz-go kgo search crash reliability cluster security deploy fuzz)

phases=()
suites=()
while (($#)); do
    case $1 in
    --against-kafka) TARGET=kafka ;;
    --port) TEST_PORT=$2; shift ;;
    setup | build | compat | all) phases+=("$1") ;;
    -h | --help) sed -n '2,21p' "$0"; exit 0 ;;
    *)
        if [[ " ${ALL_SUITES[*]} " == *" $1 "* ]]; then
            suites+=("$1")
        else
            echo "run.sh: unknown argument '$1' (try --help)" >&2
            exit 2
        fi
        ;;
    esac
    shift
done
((${#phases[@]})) || phases=(all)
if ((${#suites[@]} == 0)); then
    read -r -a suites <<<"${SUITES:-${ALL_SUITES[*]}}"
fi
[[ $TARGET == chronik || $TARGET == kafka ]] || { echo "run.sh: TARGET must be chronik or kafka" >&2; exit 2; }

want() { [[ " ${phases[*]} " == *" $1 "* || " ${phases[*]} " == *" all "* ]]; }
# The suites read TARGET too: tests that need what only chronik has here (tiered storage) are
# skipped with TARGET=kafka.
export TARGET
LS_PORT=${LOCALSTACK_PORT:-4566}

RUN_DIR=$(mktemp -d -t chronik-tests.XXXXXX)
LOG_DIR=$RUN_DIR/logs
mkdir -p "$LOG_DIR"
BROKER_PID=
KAFKA_DIR=

cleanup() {
    if [[ -n $BROKER_PID ]] && kill -0 "$BROKER_PID" 2>/dev/null; then
        kill -TERM "$BROKER_PID" 2>/dev/null
        for _ in $(seq 1 50); do kill -0 "$BROKER_PID" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$BROKER_PID" 2>/dev/null
    fi
    if [[ -n ${MOTO_OURS:-} ]]; then
        PORT=${MOTO_PORT:-5000} "$ROOT/localstack/moto.sh" stop >/dev/null 2>&1
    fi
    if [[ -n ${LOCALSTACK_OURS:-} ]]; then
        PORT=${LS_PORT:-4566} "$ROOT/localstack/stop.sh" >/dev/null 2>&1
    fi
    if [[ -n $KAFKA_DIR ]]; then
        "$ROOT/tests/kafka/kafka.sh" stop "$KAFKA_DIR" >/dev/null 2>&1
    fi
    if [[ ${KEEP_RUN_DIR:-} != 1 && -z ${CI:-} ]]; then
        rm -rf "$RUN_DIR"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

banner() { printf '\n==== %s\n' "$*"; }

# Starts LocalStack's S3 on 127.0.0.1:$LS_PORT unless it already listens (localstack/start.sh is
# idempotent and ensures the bucket either way). Only an instance started by this run is stopped
# at exit (LOCALSTACK_OURS).
ensure_localstack() {
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$LS_PORT") 2>/dev/null; then
        LOCALSTACK_OURS=1
    fi
    if PORT=$LS_PORT "$ROOT/localstack/start.sh" >>"$LOG_DIR/localstack.log" 2>&1; then
        tail -n 2 "$LOG_DIR/localstack.log"
    else
        echo "LocalStack did not start; see $LOG_DIR/localstack.log"
        tail -n 20 "$LOG_DIR/localstack.log"
        return 1
    fi
}
T_START=$SECONDS
results=() # "name|status|passed|failed|seconds|note"

# --- setup -----------------------------------------------------------------------------------------
if want setup; then
    banner "setup"
    t=$SECONDS
    if ! "$ROOT/tests/setup/setup.sh"; then
        echo "setup failed"
        echo "0 passed, 1 failed"
        exit 1
    fi
    echo "setup took $((SECONDS - t))s"
fi

# --- build (chronik only) --------------------------------------------------------------------------
if want build && [[ $TARGET == chronik ]]; then
    banner "cargo build --release (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
    t=$SECONDS
    if ! (cd "$ROOT" && cargo build --release); then
        echo "cargo build failed"
        echo "0 passed, 1 failed"
        exit 1
    fi
    # The tiering tests also run against a real S3 server: LocalStack on loopback, no Docker.
    banner "LocalStack S3 for the tiering tests"
    ls_ok=0
    ensure_localstack && ls_ok=1
    # ... and against moto's S3 server, the lighter emulator.
    banner "moto S3 for the tiering tests"
    MOTO_PORT=${MOTO_PORT:-5000}
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$MOTO_PORT") 2>/dev/null; then
        MOTO_OURS=1
    fi
    moto_ok=0
    if PORT=$MOTO_PORT "$ROOT/localstack/moto.sh" start >"$LOG_DIR/moto.log" 2>&1; then
        moto_ok=1
        tail -n 1 "$LOG_DIR/moto.log"
    else
        echo "moto did not start; see $LOG_DIR/moto.log"
        tail -n 20 "$LOG_DIR/moto.log"
    fi
    banner "cargo test --release"
    (cd "$ROOT" && env TIERING_TEST_S3_ENDPOINT="http://127.0.0.1:$LS_PORT" \
        TIERING_TEST_MOTO_ENDPOINT="http://127.0.0.1:$MOTO_PORT" AWS_ACCESS_KEY_ID=test \
        AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true \
        cargo test --release --workspace --no-fail-fast) 2>&1 | tee "$LOG_DIR/cargo-test.log"
    rc=${PIPESTATUS[0]}
    if ((ls_ok == 0 || moto_ok == 0)); then rc=1; fi
    # Sum the "test result: ok. N passed; M failed" lines of every test binary.
    read -r cp cf < <(grep -E '^test result:' "$LOG_DIR/cargo-test.log" \
        | sed -E 's/.* ([0-9]+) passed; ([0-9]+) failed.*/\1 \2/' | awk '{p += $1; f += $2} END {print p + 0, f + 0}')
    if ((rc != 0 && cf == 0)); then cf=1; fi
    results+=("cargo-test|$([[ $rc == 0 ]] && echo PASS || echo FAIL)|$cp|$cf|$((SECONDS - t))|")
fi

# --- client suites ---------------------------------------------------------------------------------
count_tests() { # suite logfile -> "passed failed"
    local suite=$1 log=$2
    case $suite in
    kcat | kafka-cli | deploy | fuzz)
        grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -1 | awk '{print $1, $3}' ;;
    confluent | kafka-python | search | crash | reliability | cluster | security)
        # pytest's closing line, e.g. "=== 3 failed, 21 passed, 1 skipped in 9.1s ===" (clients
        # may still log a few lines after it as they shut down)
        grep -E '^=+ .*(passed|failed|skipped|error).* in [0-9.]+s' "$log" | tail -1 | awk '{
            p = 0; f = 0
            for (i = 1; i <= NF; i++) {
                if ($(i) ~ /^passed/) p = $(i - 1)
                if ($(i) ~ /^failed/ || $(i) ~ /^error/) f += $(i - 1)
            }
            print p, f }' ;;
    java)
        grep -E '^\[(INFO|ERROR|WARNING)\] Tests run: [0-9]+, Failures: [0-9]+, Errors: [0-9]+, Skipped: [0-9]+$' "$log" \
            | tail -1 | sed -E 's/.*Tests run: ([0-9]+), Failures: ([0-9]+), Errors: ([0-9]+), Skipped: ([0-9]+)/\1 \2 \3 \4/' \
            | awk '{print $1 - $2 - $3 - $4, $2 + $3}' ;;
    franz-go | kgo)
        echo "$(grep -cE '^ *--- PASS' "$log") $(grep -cE '^ *--- FAIL' "$log")" ;;
    esac
}

start_broker() {
    local port=$TEST_PORT
    if [[ $TARGET == kafka ]]; then
        KAFKA_DIR=$RUN_DIR/kafka
        banner "starting reference Apache Kafka on 127.0.0.1:$port"
        "$ROOT/tests/kafka/kafka.sh" start "$port" "$KAFKA_DIR" || return 1
    else
        local bin=$CARGO_TARGET_DIR/release/chronik
        [[ -x $bin ]] || { echo "no broker binary at $bin (run: tests/run.sh build)"; return 1; }
        # The remote tier of tiered topics is LocalStack's S3, under a prefix of its own per run.
        banner "LocalStack S3 on 127.0.0.1:$LS_PORT (chronik's remote tier)"
        ensure_localstack || return 1
        local tier_url="s3://chronik/ci-$(date -u +%Y%m%d%H%M%S)-$$-$RANDOM"
        local tier_endpoint="http://127.0.0.1:$LS_PORT"
        banner "starting chronik on 127.0.0.1:$port (remote tier $tier_url at $tier_endpoint)"
        mkdir -p "$RUN_DIR/data"
        # Our own CHRONIK_* variables are not broker configuration: keep them away from it (it
        # rejects unknown CHRONIK_* keys). LocalStack takes any credentials; a session token or
        # profile of the calling environment must not leak into them.
        env -u CHRONIK_TEST_CACHE -u CHRONIK_BIN_PATH -u AWS_SESSION_TOKEN -u AWS_PROFILE \
            CHRONIK_TIERING_URL="$tier_url" CHRONIK_TIERING_ENDPOINT="$tier_endpoint" \
            CHRONIK_TIERING_REGION=us-east-1 CHRONIK_TIERING_ALLOW_HTTP=true CHRONIK_TIERING_INTERVAL_MS=200 \
            AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_EC2_METADATA_DISABLED=true \
            "$bin" serve --listen "127.0.0.1:$port" --http-listen "127.0.0.1:$((port + 2))" \
            --data-dir "$RUN_DIR/data" >"$LOG_DIR/chronik.log" 2>&1 </dev/null &
        BROKER_PID=$!
        # The search suite queries the admin HTTP port.
        export ADMIN_HTTP=127.0.0.1:$((port + 2))
        # The tiered-storage tests check the objects in the bucket when they know where it is.
        export REMOTE_TIER_URL=$tier_url REMOTE_TIER_ENDPOINT=$tier_endpoint
        local deadline=$((SECONDS + 30))
        until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
            if ! kill -0 "$BROKER_PID" 2>/dev/null; then
                echo "chronik exited during startup:"; tail -n 30 "$LOG_DIR/chronik.log"; return 1
            fi
            if ((SECONDS >= deadline)); then
                echo "chronik did not accept connections on port $port within 30s"; tail -n 30 "$LOG_DIR/chronik.log"; return 1
            fi
            sleep 0.2
        done
        echo "chronik ready (pid $BROKER_PID, log $LOG_DIR/chronik.log)"
    fi
}

if want compat; then
    if [[ -z ${BOOTSTRAP:-} ]]; then
        if ! start_broker; then
            echo "0 passed, 1 failed"
            exit 1
        fi
        export BOOTSTRAP=127.0.0.1:$TEST_PORT
    else
        TARGET_LABEL="the running broker at $BOOTSTRAP"
        banner "using $TARGET_LABEL"
    fi
    for suite in "${suites[@]}"; do
        note=
        if [[ $suite == crash || $suite == reliability || $suite == cluster || $suite == security ]]; then
            if [[ $TARGET == kafka && $suite == cluster ]]; then
                note="skipped: tests chronik's controller quorum"
            elif [[ $TARGET == kafka && $suite == security ]]; then
                note="skipped: starts chronik brokers with secured listeners"
            elif [[ $TARGET == kafka && $suite == reliability ]]; then
                note="skipped: needs chronik's tiered storage and search"
            elif [[ $TARGET == kafka ]]; then
                export CRASH_TARGET=kafka
                note="validated against Apache Kafka"
            else
                export CHRONIK_BIN_PATH=${CHRONIK_BIN_PATH:-$CARGO_TARGET_DIR/release/chronik}
            fi
        fi
        banner "suite $suite (BOOTSTRAP=$BOOTSTRAP)"
        t=$SECONDS
        "$ROOT/tests/compat/$suite.sh" 2>&1 | tee "$LOG_DIR/$suite.log"
        rc=${PIPESTATUS[0]}
        read -r p f < <(count_tests "$suite" "$LOG_DIR/$suite.log"; echo)
        p=${p:-0} f=${f:-0}
        if ((rc != 0 && f == 0)); then f=1; note="exit code $rc"; fi
        if ((rc == 0 && f > 0)); then rc=1; fi
        if ((rc == 0 && p == 0)); then note="${note:+$note; }no test ran"; fi
        results+=("$suite|$([[ $rc == 0 ]] && echo PASS || echo FAIL)|$p|$f|$((SECONDS - t))|$note")
    done
fi

# --- summary ---------------------------------------------------------------------------------------
banner "summary (target: ${TARGET_LABEL:-$TARGET}, logs: $LOG_DIR)"
total_p=0 total_f=0 suites_p=0 suites_f=0
for r in "${results[@]}"; do
    IFS='|' read -r name status p f secs note <<<"$r"
    printf '  %-5s %-13s %4d passed %3d failed %5ss  %s\n' "$status" "$name" "$p" "$f" "$secs" "$note"
    total_p=$((total_p + p))
    total_f=$((total_f + f))
    if [[ $status == PASS ]]; then suites_p=$((suites_p + 1)); else suites_f=$((suites_f + 1)); fi
done
echo "suites: $suites_p passed, $suites_f failed; total time $((SECONDS - T_START))s"
if ((${#results[@]} == 0)); then
    echo "(no suite ran in phases: ${phases[*]})"
    exit 0
fi
echo "$total_p passed, $total_f failed"
((total_f == 0 && suites_f == 0))
