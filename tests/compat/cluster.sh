#!/usr/bin/env bash
# cluster suite: several chronik processes on loopback forming one cluster (tests/compat/python/
# cluster_lib.py): the controller quorum under kill -9 and SIGSTOP (test_controller_quorum.py),
# brokers that lead, are fenced and hand over (test_cluster_brokers.py), the quorum with its
# links cut through proxies and a voter catching up from a snapshot (test_cluster_faults.py),
# replicated partitions whose leaders are killed, hung and cut off while an idempotent producer
# and a consumer run, checked for lost, moved and duplicated acknowledged records
# (test_replication_faults.py), the same check with Apache Kafka's Java producer, compiled at
# test time from tests/compat/java-checker (test_replication_faults_java.py), and real clients
# and Kafka's tools on three brokers (test_cluster_clients.py), a broker-only node beside three
# voters (test_cluster_broker_only.py), kafka-reassign-partitions moving partitions onto it
# under load (test_cluster_reassign.py), followers rebuilt from the remote tier
# (test_cluster_tiered_rebuild.py), and the search API of every broker answering for the whole
# topic, with a leader hung and after one is killed (test_cluster_search.py).
# Starts its own nodes (CHRONIK_BIN_PATH=path/to/chronik); does not
# use $BOOTSTRAP.
#
# Short by default (CI: 5 controller kills, 5 replication faults, 3 with the Java producer); the
# long runs:
#   CLUSTER_FAULTS=20 CLUSTER_SECONDS=150 REPLICATION_FAULTS=30 JAVA_REPLICATION_FAULTS=30 \
#   tests/compat/cluster.sh
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${CHRONIK_TEST_CACHE:-$HOME/.cache/chronik-tests}
if [[ ${TARGET:-chronik} == kafka ]]; then
    echo "cluster: skipped with TARGET=kafka (it tests chronik's controller quorum)"
    echo "0 passed, 0 failed"
    exit 0
fi
export CHRONIK_BIN_PATH=${CHRONIK_BIN_PATH:-${CARGO_TARGET_DIR:-$HOME/.cache/chronik-target}/release/chronik}
[[ -x $CHRONIK_BIN_PATH ]] || { echo "cluster: no broker binary at $CHRONIK_BIN_PATH" >&2; exit 1; }
CHRONIK_TOOLS_CLASSPATH=$("$HERE/kafka-tools-classpath.sh") || exit 1
export CHRONIK_TOOLS_CLASSPATH
cd "$HERE/python" && timeout "${CLUSTER_TIMEOUT_S:-1500}" "$CACHE/venv/bin/python" -m pytest -v -s \
    -p no:cacheprovider test_controller_quorum.py test_cluster_brokers.py test_cluster_faults.py \
    test_replication_faults.py test_replication_faults_java.py test_cluster_clients.py \
    test_cluster_leadership.py test_cluster_migration.py test_cluster_broker_only.py \
    test_cluster_reassign.py test_cluster_tiered_rebuild.py test_cluster_search.py "$@"
