#!/usr/bin/env bash
# Security suite: TLS, mTLS, SASL (PLAIN, SCRAM-SHA-256/512, OAUTHBEARER), ACLs and quotas with
# the real clients (confluent-kafka, the Java client and Kafka's CLI tools, franz-go), against
# brokers of its own started with secured listeners (test_security_*.py). Certificates come from
# the secure example's gen-certs.sh. Needs CHRONIK_BIN_PATH=path/to/chronik; does not use
# $BOOTSTRAP. Extra arguments go to pytest (e.g. -k scram).
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${CHRONIK_TEST_CACHE:-$HOME/.cache/chronik-tests}
if [[ ${TARGET:-chronik} == kafka ]]; then
    echo "security: skipped with TARGET=kafka (it starts chronik brokers with secured listeners)"
    echo "0 passed, 0 failed"
    exit 0
fi
export CHRONIK_BIN_PATH=${CHRONIK_BIN_PATH:-${CARGO_TARGET_DIR:-$HOME/.cache/chronik-target}/release/chronik}
[[ -x $CHRONIK_BIN_PATH ]] || { echo "security: no broker binary at $CHRONIK_BIN_PATH" >&2; exit 1; }
command -v openssl >/dev/null || { echo "security: openssl is missing (tests/setup installs it)" >&2; exit 1; }
CHRONIK_TOOLS_CLASSPATH=$("$HERE/kafka-tools-classpath.sh") || exit 1
export CHRONIK_TOOLS_CLASSPATH
limit=$((${SECURITY_TIMEOUT_S:-1200}))
cd "$HERE/python" && timeout "$limit" "$CACHE/venv/bin/python" -m pytest -v -s -p no:cacheprovider \
    test_security_*.py "$@"
