#!/usr/bin/env bash
# franz-go's own test suite: the tests of pkg/kgo of the franz-go version pinned in go/go.mod, run
# unmodified against $BOOTSTRAP with franz-go's own environment variables (KGO_SEEDS, KGO_TEST_RF=1,
# KGO_TEST_RECORDS). Against chronik (TARGET unset or chronik) the tests of kgo-allowlist.txt are
# skipped, each for the reason written there; with TARGET=kafka every test runs.
#
#   BOOTSTRAP=127.0.0.1:9092 tests/compat/kgo.sh                     all tests
#   BOOTSTRAP=127.0.0.1:9092 tests/compat/kgo.sh -test.run TestIssue434   extra arguments go to the
#                                                                    test binary (-test.* flags)
#
# Environment: KGO_TEST_RECORDS (records produced and chained through three groups by the ETL
# tests; franz-go's default, 500000, when unset), KGO_LOG_LEVEL (none here by default; info or debug to see the clients' logs),
# KGO_TIMEOUT (the test binary's -test.timeout, default 420s), CHRONIK_TEST_CACHE (the compiled
# test binary is kept there, per franz-go and Go version).
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
: "${BOOTSTRAP:?set BOOTSTRAP=host:port of the broker under test}"
CACHE=${CHRONIK_TEST_CACHE:-$HOME/.cache/chronik-tests}
TARGET=${TARGET:-chronik}

# The module source comes from the Go module proxy, read-only in the module cache; it includes
# the _test.go files. The test binary is built once per franz-go and Go version.
version=$(cd "$HERE/go" && go list -m -f '{{.Version}}' github.com/twmb/franz-go) || exit 1
src=$(cd "$HERE/go" && go mod download -json "github.com/twmb/franz-go@$version" \
    | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[[ -n $src && -d $src/pkg/kgo ]] || { echo "kgo.sh: no module source for franz-go $version"; exit 1; }
bin=$CACHE/kgo/kgo-$version-$(go env GOVERSION).test
if [[ ! -x $bin ]]; then
    mkdir -p "$CACHE/kgo"
    echo "kgo.sh: building the pkg/kgo tests of franz-go $version from $src"
    (cd "$src" && go test -c -o "$bin.tmp" ./pkg/kgo) || { echo "kgo.sh: go test -c failed"; exit 1; }
    mv -f "$bin.tmp" "$bin"
fi

skip=()
if [[ $TARGET != kafka ]]; then
    patterns=()
    echo "kgo.sh: not run against $TARGET (tests/compat/kgo-allowlist.txt):"
    while read -r pattern reason; do
        [[ -z $pattern || $pattern == \#* ]] && continue
        patterns+=("$pattern")
        printf '  %-45s %s\n' "$pattern" "$reason"
    done <"$HERE/kgo-allowlist.txt"
    if ((${#patterns[@]})); then
        joined=$(IFS='|'; echo "${patterns[*]}")
        skip=(-test.skip "$joined")
    fi
fi

export KGO_SEEDS=$BOOTSTRAP KGO_TEST_RF=1
export KGO_LOG_LEVEL=${KGO_LOG_LEVEL:-none}
echo "kgo.sh: franz-go $version pkg/kgo tests against $BOOTSTRAP (KGO_TEST_RECORDS=${KGO_TEST_RECORDS:-unset: 500000})"
# The test binary resolves nothing relative to its working directory except testdata; run it in
# the package directory like go test does.
cd "$src/pkg/kgo" && exec "$bin" -test.v -test.count=1 -test.timeout "${KGO_TIMEOUT:-420s}" "${skip[@]}" "$@"
