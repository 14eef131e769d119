#!/usr/bin/env bash
# Reference Apache Kafka broker (single node, KRaft combined broker+controller) run straight from
# Maven Central jars, for validating the compatibility suite and for benchmarks.
#
#   tests/kafka/kafka.sh libs                 resolve the jars (cached), print the libs directory
#   tests/kafka/kafka.sh start PORT DIR       format DIR and start a broker on 127.0.0.1:PORT;
#                                             returns once the broker is serving (bounded wait)
#   tests/kafka/kafka.sh restart PORT DIR     start again on the existing data of DIR (no format),
#                                             e.g. after a kill -9 of the pid in DIR/kafka.pid
#   tests/kafka/kafka.sh stop  [PORT] DIR     stop the broker started in DIR (TERM, then KILL)
#   tests/kafka/kafka.sh status [PORT] DIR    exit 0 if the broker of DIR is running
#
# Environment:
#   KAFKA_VERSION            4.4.0 by default (must match a version Maven Central serves)
#   KAFKA_CONTROLLER_PORT    controller listener port, default PORT+1 (loopback only)
#   KAFKA_HEAP               JVM heap, default 1g
#   KAFKA_START_TIMEOUT      seconds to wait for readiness, default 90
#   KAFKA_EXTRA_PROPS        extra lines appended to server.properties
#   KAFKA_LOG_REQUESTS=1     log every request (api key, version, client) to DIR/requests.log
#   CHRONIK_TEST_CACHE       cache directory (default ~/.cache/chronik-tests)
#
# Files in DIR: server.properties, log4j2.properties, data/, kafka.log, kafka.pid
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${CHRONIK_TEST_CACHE:-$HOME/.cache/chronik-tests}
KAFKA_VERSION=${KAFKA_VERSION:-4.4.0}
LIBS=$CACHE/kafka-$KAFKA_VERSION/libs

die() { echo "kafka.sh: $*" >&2; exit 1; }

resolve_libs() {
    if [[ -f $LIBS/.complete ]]; then return 0; fi
    command -v mvn >/dev/null || die "mvn not found"
    rm -rf "$LIBS"
    mkdir -p "$LIBS"
    echo "kafka.sh: resolving Apache Kafka $KAFKA_VERSION jars into $LIBS" >&2
    mvn -q -B -f "$HERE/pom.xml" -Dkafka.version="$KAFKA_VERSION" \
        org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$LIBS" >"$LIBS.mvn.log" 2>&1 \
        || { cat "$LIBS.mvn.log" >&2; die "maven could not resolve the Kafka $KAFKA_VERSION jars"; }
    [[ -f $LIBS/kafka_2.13-$KAFKA_VERSION.jar ]] || die "kafka_2.13-$KAFKA_VERSION.jar missing in $LIBS"
    touch "$LIBS/.complete"
}

# Java command line shared by the storage tool and the server (set in the array JAVA).
java_cmd() {
    local dir=$1
    JAVA=(java -Xms256m -Xmx"${KAFKA_HEAP:-1g}" -XX:+UseG1GC -Djava.awt.headless=true
        -Dlog4j2.configurationFile="$dir/log4j2.properties" -cp "$LIBS/*")
}

# A KRaft cluster id is a base64url-encoded 16-byte UUID without padding (22 characters).
random_cluster_id() {
    # The first character is kept alphanumeric so the id never looks like a command-line option.
    head -c 16 /dev/urandom | base64 | tr '+/' '-_' | cut -c1-22 | sed 's/^[-_]/A/'
}

pid_alive() { [[ -n ${1:-} ]] && kill -0 "$1" 2>/dev/null; }

write_config() {
    local port=$1 cport=$2 dir=$3
    cat >"$dir/server.properties" <<EOF
# written by tests/kafka/kafka.sh
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$dir/data
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
auto.create.topics.enable=true
delete.topic.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=3
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
${KAFKA_EXTRA_PROPS:-}
EOF
    cat >"$dir/log4j2.properties" <<EOF
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = $dir/kafka.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.controller.name = org.apache.kafka.controller
logger.controller.level = WARN
logger.raft.name = org.apache.kafka.raft
logger.raft.level = WARN
EOF
    if [[ ${KAFKA_LOG_REQUESTS:-} == 1 ]]; then
        cat >>"$dir/log4j2.properties" <<EOF
appender.requests.type = File
appender.requests.name = requests
appender.requests.fileName = $dir/requests.log
appender.requests.layout.type = PatternLayout
appender.requests.layout.pattern = [%d] %m%n
logger.requests.name = kafka.request.logger
logger.requests.level = DEBUG
logger.requests.additivity = false
logger.requests.appenderRef.requests.ref = requests
EOF
    fi
}

cmd_start() {
    local keep=$1
    shift
    local port=${1:?usage: kafka.sh start PORT DIR} dir=${2:?usage: kafka.sh start PORT DIR}
    local cport=${KAFKA_CONTROLLER_PORT:-$((port + 1))}
    local timeout=${KAFKA_START_TIMEOUT:-90}
    command -v java >/dev/null || die "java not found"
    resolve_libs
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if [[ -f $dir/kafka.pid ]] && pid_alive "$(cat "$dir/kafka.pid")"; then
        die "a broker is already running from $dir (pid $(cat "$dir/kafka.pid"))"
    fi
    java_cmd "$dir"
    local cid
    if [[ $keep == keep ]]; then
        [[ -f $dir/data/meta.properties ]] || die "$dir/data is not formatted; use start first"
        cid=$(sed -n 's/^cluster.id=//p' "$dir/data/meta.properties")
        mv -f "$dir/kafka.log" "$dir/kafka.log.prev" 2>/dev/null || true
        rm -f "$dir/kafka.pid"
    else
        rm -rf "$dir/data" "$dir/kafka.log" "$dir/kafka.out" "$dir/kafka.pid"
        write_config "$port" "$cport" "$dir"
        cid=$(random_cluster_id)
        "${JAVA[@]}" kafka.tools.StorageTool format --cluster-id "$cid" \
            --config "$dir/server.properties" --ignore-formatted >"$dir/format.log" 2>&1 \
            || { cat "$dir/format.log" >&2; die "storage format failed"; }
    fi

    setsid "${JAVA[@]}" kafka.Kafka "$dir/server.properties" >"$dir/kafka.out" 2>&1 </dev/null &
    local pid=$!
    echo "$pid" >"$dir/kafka.pid"

    local deadline=$((SECONDS + timeout))
    while ((SECONDS < deadline)); do
        if ! pid_alive "$pid"; then
            tail -n 40 "$dir/kafka.out" "$dir/kafka.log" >&2 2>/dev/null || true
            die "broker exited during startup (logs in $dir)"
        fi
        # Ready = the broker logged its start and the client port accepts connections.
        if grep -q "Kafka Server started" "$dir/kafka.log" 2>/dev/null \
            && (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "kafka.sh: Apache Kafka $KAFKA_VERSION ready on 127.0.0.1:$port (pid $pid, cluster $cid, dir $dir)" >&2
            return 0
        fi
        sleep 0.5
    done
    cmd_stop "$dir" || true
    die "broker not ready within ${timeout}s (logs in $dir)"
}

cmd_stop() {
    # Accept both `stop DIR` and `stop PORT DIR`.
    local dir=${!#}
    [[ $# -ge 1 ]] || die "usage: kafka.sh stop [PORT] DIR"
    [[ -f $dir/kafka.pid ]] || { echo "kafka.sh: no broker pid in $dir" >&2; return 0; }
    local pid
    pid=$(cat "$dir/kafka.pid")
    if pid_alive "$pid"; then
        kill -TERM "$pid" 2>/dev/null || true
        local i
        for ((i = 0; i < 60; i++)); do
            pid_alive "$pid" || break
            sleep 0.5
        done
        if pid_alive "$pid"; then
            echo "kafka.sh: broker $pid ignored SIGTERM for 30s, killing" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    rm -f "$dir/kafka.pid"
}

cmd_status() {
    local dir=${!#}
    [[ $# -ge 1 && -f $dir/kafka.pid ]] && pid_alive "$(cat "$dir/kafka.pid")"
}

case ${1:-} in
libs) resolve_libs; echo "$LIBS" ;;
start) shift; cmd_start fresh "$@" ;;
restart) shift; cmd_start keep "$@" ;;
stop) shift; cmd_stop "$@" ;;
status) shift; cmd_status "$@" ;;
*) sed -n '2,20p' "$0" >&2; exit 2 ;;
esac
