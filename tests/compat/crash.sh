#!/usr/bin/env bash
# Crash-recovery suite: starts its own broker (CHRONIK_BIN_PATH=path/to/chronik, or
# CRASH_TARGET=kafka for the reference broker), kill -9 while producing, restart, verify.
# Does not use $BOOTSTRAP.
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${CHRONIK_TEST_CACHE:-$HOME/.cache/chronik-tests}
cd "$HERE/python" && exec timeout 600 "$CACHE/venv/bin/python" -m pytest -v -s -p no:cacheprovider test_crash.py "$@"
