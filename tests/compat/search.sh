#!/usr/bin/env bash
# Search suite: pytest tests/compat/python/test_search_corpus.py (the brute-force evaluator, no
# broker needed) and test_search.py (every search answer of the broker at $BOOTSTRAP / $ADMIN_HTTP
# against a brute-force scan of the produced records; tiered part marked `tiered`). Without
# ADMIN_HTTP the search tests are skipped; with TARGET=kafka too (Apache Kafka has no search).
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${CHRONIK_TEST_CACHE:-$HOME/.cache/chronik-tests}
: "${BOOTSTRAP:?set BOOTSTRAP=host:port of the broker under test}"
cd "$HERE/python" && exec timeout 900 "$CACHE/venv/bin/python" -m pytest -v -p no:cacheprovider test_search_corpus.py test_search.py "$@"
