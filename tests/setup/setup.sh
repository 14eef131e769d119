#!/usr/bin/env bash
# Installs everything the client suites need; idempotent and cheap on a warm cache.
#   apt: kcat, netcat-openbsd, python3-venv (and JDK/Maven if missing)
#   $CACHE/venv: Python clients from tests/setup/requirements.txt
#   ~/.m2: the Java suite and the kafka-tools CLI classpath (tests/compat/java/pom.xml)
#   $CACHE/kafka-<version>/libs: the reference Apache Kafka broker (tests/kafka/kafka.sh libs)
#   Go module cache: franz-go for tests/compat/go
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CACHE=${CHRONIK_TEST_CACHE:-$HOME/.cache/chronik-tests}
mkdir -p "$CACHE"
step() { printf '\n== setup: %s\n' "$*"; }
t0=$SECONDS

# --- Debian packages -----------------------------------------------------------------------------
step "system packages"
need=()
command -v kcat >/dev/null || need+=(kcat)
command -v nc >/dev/null || need+=(netcat-openbsd)
# javac, not only java: the Java test programs (tests/compat/java, java-checker) are compiled here.
command -v javac >/dev/null || need+=(openjdk-17-jdk-headless)
command -v mvn >/dev/null || need+=(maven)
command -v timeout >/dev/null || need+=(coreutils)
# The security suite makes its certificates with the secure example's gen-certs.sh.
command -v openssl >/dev/null || need+=(openssl)
PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null; then
    PYTHON=/usr/bin/python3
    dpkg -s python3-venv >/dev/null 2>&1 || need+=(python3-venv)
fi
if ((${#need[@]})); then
    SUDO=
    [[ $(id -u) == 0 ]] || SUDO=sudo
    echo "installing: ${need[*]}"
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${need[@]}"
fi
for tool in kcat java mvn go; do
    command -v "$tool" >/dev/null || { echo "setup: $tool is required but missing" >&2; exit 1; }
done
echo "kcat: $(kcat -V 2>&1 | sed -n 's/^Version //p')"

# --- Python venv ---------------------------------------------------------------------------------
step "python venv ($CACHE/venv)"
REQ=$ROOT/tests/setup/requirements.txt
stamp=$(cat "$REQ" | sha256sum | cut -c1-16)
if [[ ! -x $CACHE/venv/bin/python || $(cat "$CACHE/venv/.stamp" 2>/dev/null) != "$stamp" ]]; then
    rm -rf "$CACHE/venv"
    "$PYTHON" -m venv "$CACHE/venv"
    "$CACHE/venv/bin/pip" install -q --disable-pip-version-check --upgrade pip
    "$CACHE/venv/bin/pip" install -q --disable-pip-version-check -r "$REQ"
    echo "$stamp" >"$CACHE/venv/.stamp"
fi
"$CACHE/venv/bin/python" -c 'import confluent_kafka, kafka; print("confluent-kafka", confluent_kafka.__version__, "(librdkafka", confluent_kafka.libversion()[0] + ")", "kafka-python", kafka.__version__)'

# --- Maven: Java suite + kafka-tools classpath, reference broker jars -----------------------------
step "maven (java suite, kafka-tools, reference broker)"
mvn -q -B -f "$ROOT/tests/compat/java/pom.xml" test-compile dependency:build-classpath \
    -Dmdep.includeScope=test -Dmdep.outputFile="$CACHE/kafka-cli.classpath" >"$CACHE/setup-mvn.log" 2>&1 \
    || { cat "$CACHE/setup-mvn.log"; exit 1; }
"$ROOT/tests/kafka/kafka.sh" libs

# --- Go ------------------------------------------------------------------------------------------
step "go (franz-go)"
(cd "$ROOT/tests/compat/go" && go mod download && go vet ./...)
echo "go: $(go version | cut -d' ' -f3), franz-go $(grep 'twmb/franz-go ' "$ROOT/tests/compat/go/go.mod" | awk '{print $2}')"

step "done in $((SECONDS - t0))s"
