#!/usr/bin/env bash
# Apache Kafka Java client suite (JUnit 5 via Maven Surefire) against $BOOTSTRAP.
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
: "${BOOTSTRAP:?set BOOTSTRAP=host:port of the broker under test}"
export BOOTSTRAP
cd "$HERE/java" && exec timeout 900 mvn -B -ntp -Dstyle.color=never test "$@"
