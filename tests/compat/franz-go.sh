#!/usr/bin/env bash
# franz-go (kgo + kadm) suite: go test in tests/compat/go against $BOOTSTRAP.
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
: "${BOOTSTRAP:?set BOOTSTRAP=host:port of the broker under test}"
export BOOTSTRAP
cd "$HERE/go" && exec go test -count=1 -v -timeout 300s ./... "$@"
