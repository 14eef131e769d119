# shellcheck shell=bash disable=SC2034
# Shared helpers for the shell-based client suites (sourced, not run).
# Every suite reads the broker address from BOOTSTRAP and prints its own
# "N passed, N failed" line at the end.

CACHE=${CHRONIK_TEST_CACHE:-$HOME/.cache/chronik-tests}
: "${BOOTSTRAP:?set BOOTSTRAP=host:port of the broker under test}"
# Unique per run, so reruns against a long-lived broker never reuse a topic.
SUFFIX=$(date +%s)-$$-$RANDOM
PASSED=0
FAILED=0
FAILED_NAMES=()

ok() {
    PASSED=$((PASSED + 1))
    echo "ok   - $1"
}

not_ok() {
    FAILED=$((FAILED + 1))
    FAILED_NAMES+=("$1")
    echo "FAIL - $1"
    shift
    local line
    for line in "$@"; do echo "       $line"; done
}

# check NAME EXPECTED ACTUAL: passes when both strings are byte-identical.
check_eq() {
    local name=$1 expected=$2 actual=$3
    if [[ "$expected" == "$actual" ]]; then
        ok "$name"
    else
        not_ok "$name" "expected: $(printf '%q' "${expected:0:300}")" "actual:   $(printf '%q' "${actual:0:300}")"
    fi
}

finish() {
    echo
    if ((FAILED > 0)); then
        echo "failed checks: ${FAILED_NAMES[*]}"
    fi
    echo "$PASSED passed, $FAILED failed"
    ((FAILED == 0))
}
