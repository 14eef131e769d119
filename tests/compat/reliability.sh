#!/usr/bin/env bash
# Reliability suite: full data and cache disks on tmpfs (test_disk_full.py, needs root), the kill -9
# loop under a mixed load and S3 faults through a fault-injecting proxy
# (test_reliability_*.py), abuse of both ports (test_abuse.py). Starts its own brokers
# (CHRONIK_BIN_PATH=path/to/chronik); does not use $BOOTSTRAP. Their remote tier is the S3 server
# at $REMOTE_TIER_ENDPOINT (bucket `chronik`), else LocalStack on 127.0.0.1:${LOCALSTACK_PORT:-4566},
# started here if it is not running (and then stopped again at the end).
#
# Short by default (CI); the long runs of docs/reliability.md:
#   RELIABILITY_CYCLES=50 RELIABILITY_S3_HANG_S=60 RELIABILITY_S3_FAULT_S=20 tests/compat/reliability.sh
# Extra arguments go to pytest (e.g. -k kill9, -k s3).
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CACHE=${CHRONIK_TEST_CACHE:-$HOME/.cache/chronik-tests}
if [[ ${TARGET:-chronik} == kafka ]]; then
    echo "reliability: skipped with TARGET=kafka (it needs chronik's tiered storage and search)"
    echo "0 passed, 0 failed"
    exit 0
fi
export CHRONIK_BIN_PATH=${CHRONIK_BIN_PATH:-${CARGO_TARGET_DIR:-$HOME/.cache/chronik-target}/release/chronik}
[[ -x $CHRONIK_BIN_PATH ]] || { echo "reliability: no broker binary at $CHRONIK_BIN_PATH" >&2; exit 1; }
OURS=
if [[ -z ${REMOTE_TIER_ENDPOINT:-} ]]; then
    LS_PORT=${LOCALSTACK_PORT:-4566}
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$LS_PORT") 2>/dev/null; then OURS=1; fi
    PORT=$LS_PORT "$ROOT/localstack/start.sh" >/dev/null || { echo "reliability: LocalStack did not start" >&2; exit 1; }
    export REMOTE_TIER_ENDPOINT=http://127.0.0.1:$LS_PORT
fi
# Bounded: the CI run takes about 3 minutes; the long runs about 25.
limit=$((${RELIABILITY_TIMEOUT_S:-1800}))
cd "$HERE/python" && timeout "$limit" "$CACHE/venv/bin/python" -m pytest -v -s -p no:cacheprovider \
    test_disk_full.py test_reliability_kill9.py test_reliability_s3_faults.py test_abuse.py "$@"
rc=$?
if [[ -n $OURS ]]; then PORT=$LS_PORT "$ROOT/localstack/stop.sh" >/dev/null 2>&1; fi
exit $rc
