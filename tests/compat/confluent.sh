#!/usr/bin/env bash
# confluent-kafka (librdkafka) suite: pytest tests/compat/python/test_confluent.py and
# test_confluent_tiered.py (tiered storage; skipped with TARGET=kafka) against $BOOTSTRAP.
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${CHRONIK_TEST_CACHE:-$HOME/.cache/chronik-tests}
: "${BOOTSTRAP:?set BOOTSTRAP=host:port of the broker under test}"
cd "$HERE/python" && exec timeout 600 "$CACHE/venv/bin/python" -m pytest -v -p no:cacheprovider test_confluent.py test_confluent_tiered.py "$@"
