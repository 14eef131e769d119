#!/usr/bin/env bash
# Builds and runs every fuzz target for a while; exits non-zero if any target crashed.
#
#   tests/fuzz/run.sh [SECONDS_PER_TARGET]      default 30 (what CI runs); 0 = build only
#   FUZZ_TARGETS="record_batch config" tests/fuzz/run.sh 600
#
# Installs cargo-fuzz (pinned, from crates.io) when it is missing. Builds with nightly when it is
# installed, else with the default (stable) toolchain: without a sanitizer cargo-fuzz passes only
# stable flags; with one it needs -Zsanitizer, so RUSTC_BOOTSTRAP=1 is set.
# Sanitizer: none by default (FUZZ_SANITIZER=address for ASan; see docs/fuzzing.md); overflow
# checks and debug assertions are on.
#
# Each target starts from its committed seeds (tests/fuzz/corpus/<target>, never written to)
# plus what earlier runs on this machine found ($FUZZ_WORK/corpus/<target>). A crash leaves its
# input in $FUZZ_WORK/artifacts/<target>/ and the reproduction command in the output.
#
# Environment: CHRONIK_FUZZ_TARGET_DIR (default ~/.cache/chronik-fuzz-target; never the
# broker's target dir: the instrumented build would evict its artifacts), FUZZ_WORK (default
# ~/.cache/chronik-fuzz), FUZZ_TARGETS, FUZZ_SANITIZER, FUZZ_JOBS (parallel processes per target,
# default 1), FUZZ_ARGS (extra libFuzzer flags), FUZZ_SEED (libFuzzer's random seed; unset = a
# new one each run), FUZZ_RUNS (stop after this many executions per target, `default` for the
# sizes below; SECONDS_PER_TARGET then only caps the time).
set -uo pipefail

CARGO_FUZZ_VERSION=0.13.2
SECS=${1:-30}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
export CARGO_TARGET_DIR=${CHRONIK_FUZZ_TARGET_DIR:-$HOME/.cache/chronik-fuzz-target}
FUZZ_WORK=${FUZZ_WORK:-$HOME/.cache/chronik-fuzz}
SANITIZER=${FUZZ_SANITIZER:-none}
ALL_TARGETS=(request_frame record_batch search_query config metadata_wal)
read -r -a targets <<<"${FUZZ_TARGETS:-${ALL_TARGETS[*]}}"

# Inputs larger than libFuzzer's default 4 KiB: whole conversations and compressed batches.
max_len() {
    case $1 in
    request_frame | record_batch | metadata_wal) echo 32768 ;;
    *) echo 4096 ;;
    esac
}

# FUZZ_RUNS=default: a fixed number of executions per target, sized to about 30 s here (the
# targets differ a thousandfold in speed); FUZZ_RUNS=N: N for every target.
runs_of() {
    if [[ $FUZZ_RUNS != default ]]; then echo "$FUZZ_RUNS"; return; fi
    case $1 in
    request_frame) echo 12000 ;;
    record_batch) echo 1000000 ;;
    search_query) echo 300000 ;;
    config) echo 800000 ;;
    metadata_wal) echo 150000 ;;
    *) echo 100000 ;;
    esac
}

# --- cargo-fuzz and a toolchain that can build with it -------------------------------------------
if ! cargo fuzz --version 2>/dev/null | grep -qx "cargo-fuzz $CARGO_FUZZ_VERSION"; then
    echo "installing cargo-fuzz $CARGO_FUZZ_VERSION"
    cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked || { echo "cannot install cargo-fuzz"; echo "0 passed, 1 failed"; exit 1; }
fi
TOOLCHAIN=()
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    TOOLCHAIN=(+nightly)
elif [[ $SANITIZER != none ]]; then
    echo "no nightly toolchain: building with stable and RUSTC_BOOTSTRAP=1 (sanitizer $SANITIZER)"
    export RUSTC_BOOTSTRAP=1
fi
fuzz() { (cd "$ROOT" && cargo "${TOOLCHAIN[@]}" fuzz "$@"); }

# --- build -----------------------------------------------------------------------------------------
t=$SECONDS
echo "== building fuzz targets (sanitizer $SANITIZER, CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
fuzz build --fuzz-dir tests/fuzz -s "$SANITIZER" --debug-assertions 2>&1 | tail -n 40
rc=${PIPESTATUS[0]}
echo "build: $((SECONDS - t))s (exit $rc)"
if ((rc != 0)); then
    echo "0 passed, ${#targets[@]} failed"
    exit 1
fi
((SECS > 0)) || exit 0

# --- run -------------------------------------------------------------------------------------------
passed=0 failed=0
summary=()
for target in "${targets[@]}"; do
    work=$FUZZ_WORK/corpus/$target
    artifacts=$FUZZ_WORK/artifacts/$target
    mkdir -p "$work" "$artifacts"
    log=$FUZZ_WORK/$target.log
    echo "== fuzz $target for ${SECS}s"
    t=$SECONDS
    # The first corpus directory receives new inputs; the committed seeds are only read.
    # shellcheck disable=SC2086
    fuzz run --fuzz-dir tests/fuzz -s "$SANITIZER" --debug-assertions "$target" \
        "$work" "$HERE/corpus/$target" -- \
        -max_total_time="$SECS" ${FUZZ_SEED:+-seed=$FUZZ_SEED} ${FUZZ_RUNS:+-runs=$(runs_of "$target")} -timeout=20 -rss_limit_mb=2048 -max_len="$(max_len "$target")" \
        -print_final_stats=1 -artifact_prefix="$artifacts/" \
        ${FUZZ_JOBS:+-jobs=$FUZZ_JOBS -workers=$FUZZ_JOBS} ${FUZZ_ARGS:-} >"$log" 2>&1
    rc=$?
    secs=$((SECONDS - t))
    runs=$(grep -oE '^stat::number_of_executed_units: *[0-9]+' "$log" | tail -1 | grep -oE '[0-9]+$')
    last=$(grep -E '^#[0-9]+' "$log" | tail -1)
    cov=$(grep -oE 'cov: [0-9]+' <<<"$last" | grep -oE '[0-9]+')
    ft=$(grep -oE 'ft: [0-9]+' <<<"$last" | grep -oE '[0-9]+')
    corp=$(grep -oE 'corp: [0-9]+' <<<"$last" | grep -oE '[0-9]+')
    line="$target runs=${runs:-?} secs=$secs cov=${cov:-?} ft=${ft:-?} corpus=${corp:-?}"
    if ((rc == 0)); then
        passed=$((passed + 1))
        summary+=("PASS $line")
    else
        failed=$((failed + 1))
        summary+=("FAIL $line (exit $rc, log $log)")
        grep -E 'panicked at|ERROR: libFuzzer|SUMMARY|Test unit written to|^thread' "$log" | head -n 20
        crash=$(grep -oE 'Test unit written to [^ ]+' "$log" | tail -1 | awk '{print $5}')
        if [[ -n $crash ]]; then
            echo "reproduce: cargo +nightly fuzz run --fuzz-dir tests/fuzz -s $SANITIZER --debug-assertions $target $crash"
            echo "input (base64): $(head -c 2048 "$crash" | base64 -w0)"
        fi
    fi
done
echo "== fuzz summary (${SECS}s per target)"
printf '  %s\n' "${summary[@]}"
echo "$passed passed, $failed failed"
((failed == 0))
