#!/usr/bin/env bash
# Warm remote read vs local read with a franz-go consumer (issue 18): one broker, the remote tier
# on file://, the same data in a tiered topic (remote-only once tiered) and in a plain topic;
# the remote range is read once to warm the chunk cache, then ROUNDS rounds each time the warm
# remote read and the local read back to back (which goes first alternates), each read PASSES
# times. Prints MB/s of each and their ratio, then the broker's side alone: plain Fetch requests
# one after the other, without a consumer's work. Bench-only, loopback only, not part of CI. See
# docs/performance.md, "Remote reads with franz-go".
#
#   tests/bench/remote_warm.sh                       1000 MB, 7 rounds of 3 passes (~3 min)
#   MB=200 ROUNDS=2 tests/bench/remote_warm.sh       smoke run
#
# Environment (defaults in brackets):
#   CHRONIK_BIN_PATH [$CARGO_TARGET_DIR/release/chronik]   the broker binary (not built here)
#   MB [1000] RECORD_SIZE [1024]    MB (10^6 bytes) of record values per topic, record size
#   ROUNDS [7]                      timed rounds (remote warm and local, in turn first)
#   PASSES [3]                      reads of the whole range per timed read (a client each)
#   SEGMENT_BYTES [67108864]        segment.bytes of both topics
#   CACHE_MEMORY_BYTES [2147483648] CACHE_DISK_BYTES [4294967296] CACHE_CHUNK_BYTES [4194304]
#   PORT [39092]                    Kafka listener on 127.0.0.1 (the admin HTTP port is off)
#   BENCH_DIR [/var/tmp/chronik-remote-warm]  data directory (wiped at the start)
#   TIER_TIMEOUT [300]              s to wait until the tiered topic is remote-only
#   BROKER_CPU [0] LOAD_CPU [1]     taskset cores for broker and consumer (2 cores or more)
#   BROKER_ENV [""]                 extra broker settings, "CHRONIK_X=1 CHRONIK_Y=2"
#   PERF [0]                        1 = perf record -g the broker during round 1's two reads
#                                   ($BENCH_DIR/perf-remote.data, perf-local.data)
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BIN=${CHRONIK_BIN_PATH:-${CARGO_TARGET_DIR:-$HOME/.cache/chronik-target}/release/chronik}
MB=${MB:-1000}
RECORD_SIZE=${RECORD_SIZE:-1024}
ROUNDS=${ROUNDS:-7}
PASSES=${PASSES:-3}
SEGMENT_BYTES=${SEGMENT_BYTES:-67108864}
PORT=${PORT:-39092}
DIR=${BENCH_DIR:-/var/tmp/chronik-remote-warm}
TIER_TIMEOUT=${TIER_TIMEOUT:-300}
BROKER_CPU=${BROKER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
B=127.0.0.1:$PORT
REMOTE=rw-remote
LOCAL=rw-local

[[ -x $BIN ]] || { echo "no broker binary at $BIN (set CHRONIK_BIN_PATH)" >&2; exit 2; }
PIN_BROKER=() PIN_LOAD=()
if (($(nproc) >= 2)); then
  PIN_BROKER=(taskset -c "$BROKER_CPU") PIN_LOAD=(taskset -c "$LOAD_CPU")
fi

CLIENT=$DIR/remote_warm
rm -rf "$DIR" && mkdir -p "$DIR/data"
(cd "$HERE/remote_warm" && go build -o "$CLIENT" .)

BROKER_PID=
cleanup() {
  if [[ -n $BROKER_PID ]] && kill -0 "$BROKER_PID" 2>/dev/null; then
    kill "$BROKER_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$BROKER_PID" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$BROKER_PID" 2>/dev/null || true
  fi
}
trap cleanup EXIT

# The broker refuses CHRONIK_* variables it does not know (CHRONIK_BIN_PATH): none of ours go in.
UNSET=()
for v in $(compgen -e | grep '^CHRONIK_' || true); do UNSET+=(-u "$v"); done
# shellcheck disable=SC2086
env "${UNSET[@]}" CHRONIK_TIERING_INTERVAL_MS=200 \
  CHRONIK_CACHE_MEMORY_BYTES=${CACHE_MEMORY_BYTES:-2147483648} \
  CHRONIK_CACHE_DISK_BYTES=${CACHE_DISK_BYTES:-4294967296} \
  CHRONIK_CACHE_CHUNK_BYTES=${CACHE_CHUNK_BYTES:-4194304} \
  ${BROKER_ENV:-} \
  "${PIN_BROKER[@]}" "$BIN" serve --listen "$B" --data-dir "$DIR/data" --http-listen '' \
  >"$DIR/broker.log" 2>&1 &
BROKER_PID=$!
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
  kill -0 "$BROKER_PID" 2>/dev/null || { tail -20 "$DIR/broker.log"; exit 1; }
  sleep 0.1
done

client() { "${PIN_LOAD[@]}" "$CLIENT" "$@" -brokers "$B"; }
# The broker's CPU time (user + system) in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$BROKER_PID/stat"; }
TICKS=$(getconf CLK_TCK)
# "MB/s broker-CPU-s-per-GB" of one timed read: consume TOPIC (PASSES times, or $3).
timed() {
  local c0 c1 out perf_pid=
  if [[ -n ${2:-} ]]; then
    perf record -q -g -o "$DIR/perf-$2.data" -p "$BROKER_PID" 2>/dev/null &
    perf_pid=$!
    sleep 0.5
  fi
  c0=$(cpu_ticks)
  out=$(client consume -topic "$1" -from 0 -to "$END" -passes "${3:-$PASSES}")
  c1=$(cpu_ticks)
  if [[ -n $perf_pid ]]; then kill -INT "$perf_pid"; wait "$perf_pid" || true; fi
  python3 -c '
import json, sys
d = json.loads(sys.argv[1])
cpu = int(sys.argv[2]) / int(sys.argv[3])
print("%.0f %.2f" % (d["mb_s"], cpu / (d["bytes"] / 1e9)))' "$out" "$((c1 - c0))" "$TICKS"
}

client create -topic "$REMOTE" \
  -config "remote.storage.enable=true,segment.bytes=$SEGMENT_BYTES,local.retention.bytes=1,local.retention.ms=1"
client create -topic "$LOCAL" -config "segment.bytes=$SEGMENT_BYTES"
echo "produce $MB MB of $RECORD_SIZE B records into $REMOTE: $(client produce -topic "$REMOTE" -mb "$MB" -size "$RECORD_SIZE")"
echo "produce $MB MB of $RECORD_SIZE B records into $LOCAL:  $(client produce -topic "$LOCAL" -mb "$MB" -size "$RECORD_SIZE")"

# Remote-only: every sealed segment's local copy deleted, one .log (the active segment) left.
PDIR=$(find "$DIR/data" -maxdepth 3 -type d -name "$REMOTE-0" | head -1)
[[ -n $PDIR ]] || { echo "no partition directory for $REMOTE-0 under $DIR/data" >&2; exit 1; }
t0=$SECONDS
while :; do
  logs=("$PDIR"/*.log)
  ((${#logs[@]} == 1)) && [[ $(basename "${logs[0]}") != 00000000000000000000.log ]] && break
  if ((SECONDS - t0 > TIER_TIMEOUT)); then
    echo "not remote-only after ${TIER_TIMEOUT}s: ${logs[*]}" >&2
    exit 1
  fi
  sleep 0.5
done
END=$((10#$(basename "${logs[0]}" .log)))
REMOTE_BYTES=$(du -sb "$DIR/data/remote" | cut -f1)
echo "remote-only after $((SECONDS - t0)) s: offsets [0, $END) in the remote tier ($REMOTE_BYTES bytes under data/remote)"

read -r a ca <<<"$(timed "$REMOTE" "" 1)"
echo "remote cold (fills the cache; the file:// objects are in the page cache): $a MB/s, broker $ca CPU s/GB"
# The cold read queued every chunk for the disk tier (checksums, direct writes: the broker's
# core): wait until the broker is idle, so the first warm round does not share the core with it.
for _ in $(seq 60); do
  c0=$(cpu_ticks)
  sleep 0.5
  (($(cpu_ticks) - c0 <= TICKS / 20)) && break
done

echo "MB/s of record values, and the broker's CPU seconds per GB read (CPU s/GB)"
printf '%-6s %12s %8s %12s %8s %8s\n' round remote_warm CPU_s/GB local CPU_s/GB ratio
ratios=()
for r in $(seq "$ROUNDS"); do
  p1= p2=
  if [[ ${PERF:-0} == 1 && $r == 1 ]]; then p1=remote p2=local; fi
  # Whichever goes second may find the machine warmer or busier: they take turns.
  if ((r % 2)); then
    read -r a ca <<<"$(timed "$REMOTE" "$p1")"
    read -r b cb <<<"$(timed "$LOCAL" "$p2")"
  else
    read -r b cb <<<"$(timed "$LOCAL" "$p2")"
    read -r a ca <<<"$(timed "$REMOTE" "$p1")"
  fi
  ratio=$(python3 -c "print(f'{$a/$b:.2f}')")
  ratios+=("$ratio")
  printf '%-6s %12s %8s %12s %8s %8s\n' "$r" "$a" "$ca" "$b" "$cb" "$ratio"
done
python3 - "${ratios[@]}" <<'PY'
import statistics, sys
r = [float(x) for x in sys.argv[1:]]
print(f"ratio remote warm / local: median {statistics.median(r):.2f}, min {min(r):.2f}, max {max(r):.2f} over {len(r)} rounds")
PY
echo "the broker alone: 1 MiB Fetch requests one after the other (no consumer work), 3 reads each"
for t in "$REMOTE" "$LOCAL" "$REMOTE" "$LOCAL" "$REMOTE" "$LOCAL"; do
  printf '%-10s %s\n' "$t" "$(client fetch -topic "$t" -from 0 -to "$END")"
done
grep -ci "remote read failed\|panicked" "$DIR/broker.log" | sed 's/^/broker log errors: /' || true
