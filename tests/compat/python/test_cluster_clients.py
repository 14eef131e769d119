"""Real clients and Kafka's own tools against a three-broker cluster (three processes on
loopback, each broker and controller voter):

- Kafka's `kafka-topics --describe` shows partitions led by different brokers,
  `kafka-metadata-quorum describe --status / --replication` the quorum with its three voters,
  `kafka-consumer-groups --describe` a group's committed offsets (tools from Maven Central);
- the Java client (Kafka's console producer and consumer) produces to and consumes from
  partitions led by different brokers;
- franz-go's produce/consume and group tests (tests/compat/go) pass against the cluster.

Needs the tool classpath of the kafka-cli suite (CHRONIK_TOOLS_CLASSPATH, made by cluster.sh)
and Go with the modules of tests/compat/go. Bounded: each tool run has a timeout.
"""

import os
import re
import subprocess
from pathlib import Path

import pytest

from cluster_lib import Cluster
from reliability_lib import wait_until

HERE = Path(__file__).resolve().parent
IN_CI = bool(os.environ.get("CI"))


def need(what, ok):
    if not ok:
        if IN_CI:
            pytest.fail(f"{what} is missing (CI installs it: tests/compat/cluster.sh)")
        pytest.skip(f"{what} is missing")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("cluster"), n=3, session_timeout_ms=6000)
    c.start()
    try:
        yield c
    finally:
        c.stop()


def tool(cls, *args, timeout=120, stdin=None):
    classpath = os.environ.get("CHRONIK_TOOLS_CLASSPATH", "")
    need("the Kafka tools classpath", classpath and Path(classpath).is_file())
    cp = Path(classpath).read_text().strip()
    cmd = ["java", "-Xmx256m", "-XX:TieredStopAtLevel=1",
           "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn", "-cp", cp, cls, *args]
    r = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout)
    out = r.stdout + r.stderr
    assert r.returncode == 0, f"{cls} {' '.join(args)} exited {r.returncode}:\n{out[-3000:]}"
    return out


TOPICS = "org.apache.kafka.tools.TopicCommand"
QUORUM = "org.apache.kafka.tools.MetadataQuorumCommand"
GROUPS = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand"
PRODUCER = "org.apache.kafka.tools.ConsoleProducer"
CONSUMER = "org.apache.kafka.tools.consumer.ConsoleConsumer"


def test_kafka_topics_describe_shows_leaders_on_every_broker(cluster):
    boot = cluster.node(2).bootstrap
    tool(TOPICS, "--bootstrap-server", boot, "--create", "--topic", "tools-t", "--partitions", "6")
    out = tool(TOPICS, "--bootstrap-server", boot, "--describe", "--topic", "tools-t")
    print(out)
    leaders = set(re.findall(r"Leader: (\d+)", out))
    assert leaders == {"1", "2", "3"}, out
    assert "PartitionCount: 6" in out and "ReplicationFactor: 1" in out


def test_kafka_metadata_quorum_status_and_replication(cluster):
    boot = cluster.node(1).bootstrap
    status = tool(QUORUM, "--bootstrap-server", boot, "describe", "--status")
    print(status)
    leader = int(re.search(r"LeaderId:\s+(\d+)", status).group(1))
    assert leader in (1, 2, 3)
    assert re.search(r"HighWatermark:\s+\d+", status)
    assert all(f'"id": {i}' in status for i in (1, 2, 3)), status
    replication = tool(QUORUM, "--bootstrap-server", boot, "describe", "--replication")
    print(replication)
    rows = [line.split() for line in replication.splitlines() if re.match(r"^\d+\s", line)]
    assert sorted(int(r[0]) for r in rows) == [1, 2, 3], replication
    assert sum(1 for r in rows if r[-1] == "Leader") == 1, replication


def test_java_console_clients_across_brokers_and_consumer_groups_tool(cluster):
    boot = cluster.bootstrap
    tool(TOPICS, "--bootstrap-server", boot, "--create", "--topic", "java-t", "--partitions", "3")
    lines = "".join(f"k{i}:v{i}\n" for i in range(300))
    tool(PRODUCER, "--bootstrap-server", boot, "--topic", "java-t",
         "--property", "parse.key=true", "--property", "key.separator=:",
         "--producer-property", "acks=all", stdin=lines)
    out = tool(CONSUMER, "--bootstrap-server", boot, "--topic", "java-t", "--group", "java-g",
               "--from-beginning", "--max-messages", "300", "--timeout-ms", "30000")
    got = sorted(line for line in out.splitlines() if line.startswith("v"))
    assert got == sorted(f"v{i}" for i in range(300)), f"read {len(got)} of 300"
    described = tool(GROUPS, "--bootstrap-server", boot, "--describe", "--group", "java-g")
    print(described)
    rows = [line.split() for line in described.splitlines() if line.startswith("java-g ")]
    assert len(rows) == 3, described
    assert sum(int(r[3]) for r in rows) == 300, "committed offsets add up to what was read"
    assert all(r[3] == r[4] for r in rows), "no lag left"
    listed = tool(GROUPS, "--bootstrap-server", boot, "--list")
    assert "java-g" in listed.split()


def test_franz_go_produce_consume_and_groups(cluster):
    go = subprocess.run(["bash", "-c", "command -v go"], capture_output=True, text=True)
    need("go", go.returncode == 0)
    # One seed: the client finds the other brokers through Metadata.
    env = dict(os.environ, BOOTSTRAP=cluster.node(3).bootstrap)
    wanted = "TestProduceConsumeCodecs|TestListOffsetsAndDeleteRecords|TestGroupMembersRebalanceCommitAndLeave|TestGroupAdminOffsets"
    r = subprocess.run(["go", "test", "-count=1", "-v", "-timeout", "240s", "-run", wanted, "./..."],
                       cwd=HERE.parent / "go", env=env, capture_output=True, text=True, timeout=300)
    out = r.stdout + r.stderr
    passed = re.findall(r"^--- PASS: (\S+)", out, re.M)
    print(f"franz-go on 3 brokers: passed {passed}")
    assert r.returncode == 0, out[-4000:]
    assert len(passed) == 4, out[-4000:]


def test_every_node_lists_three_brokers(cluster):
    from confluent_kafka.admin import AdminClient
    for n in cluster.nodes:
        md = wait_until(lambda: AdminClient({"bootstrap.servers": n.bootstrap}).list_topics(timeout=10),
                        20, what=f"metadata of node {n.id}")
        assert sorted(md.brokers) == [1, 2, 3]
