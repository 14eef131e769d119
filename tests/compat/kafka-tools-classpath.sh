#!/usr/bin/env bash
# Resolves the classpath of Apache Kafka's command-line tools (kafka-tools and the Java client,
# from Maven Central, as tests/compat/java/pom.xml pins them) once, and prints the file that
# holds it. Used by the kafka-cli and cluster suites.
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${CHRONIK_TEST_CACHE:-$HOME/.cache/chronik-tests}
CP_FILE=$CACHE/kafka-cli.classpath
POM=$HERE/java/pom.xml
if [[ ! -s $CP_FILE || $POM -nt $CP_FILE ]]; then
    mkdir -p "$CACHE"
    mvn -q -B -f "$POM" dependency:build-classpath -Dmdep.includeScope=test \
        -Dmdep.outputFile="$CP_FILE" >"$CACHE/kafka-cli.mvn.log" 2>&1 \
        || { cat "$CACHE/kafka-cli.mvn.log" >&2; echo "could not resolve the kafka-tools classpath" >&2; exit 1; }
fi
echo "$CP_FILE"
