"""Leadership of replicated partitions with Kafka's own tools: `kafka-topics --describe` shows the
in-sync set shrink when a broker stops and grow when it is back; `kafka-leader-election
--election-type preferred` moves leaderships back to the preferred replicas; with automatic
rebalancing on, the controller does that by itself.

Needs the tool classpath of the kafka-cli suite (CHRONIK_TOOLS_CLASSPATH, made by cluster.sh).
Bounded: every wait has a deadline.
"""

import re

from confluent_kafka import Producer

from cluster_lib import Cluster
from reliability_lib import wait_until
from test_cluster_clients import TOPICS, tool

ELECTION = "org.apache.kafka.tools.LeaderElectionCommand"


def describe(boot, topic):
    """{partition: (leader, replicas, isr)} as `kafka-topics --describe` prints it."""
    out = tool(TOPICS, "--bootstrap-server", boot, "--describe", "--topic", topic)
    parts = {}
    for m in re.finditer(r"Partition: (\d+)\s+Leader: (-?\d+)\s+Replicas: ([\d,]*)\s+Isr: ([\d,]*)",
                         out):
        ids = lambda s: [int(x) for x in s.split(",") if x]  # noqa: E731
        parts[int(m.group(1))] = (int(m.group(2)), ids(m.group(3)), ids(m.group(4)))
    return parts, out


def preferred_everywhere(parts):
    return all(leader == replicas[0] and len(isr) == 3 for leader, replicas, isr in parts.values())


def produce_some(boot, topic, n=300):
    p = Producer({"bootstrap.servers": boot, "acks": "all", "enable.idempotence": True})
    for i in range(n):
        p.produce(topic, value=f"v{i}".encode(), partition=i % 3)
    assert p.flush(60) == 0


def stop_and_return(cluster, boot, topic, node_id):
    """Stops node `node_id`, sees the ISR shrink and the leaderships move, starts it again and
    waits until it is back in every ISR."""
    cluster.node(node_id).stop()
    parts, out = describe(boot, topic)
    print(out)
    assert all(node_id not in isr for _, _, isr in parts.values()), parts
    assert all(leader != node_id for leader, _, _ in parts.values()), parts
    produce_some(boot, topic)
    cluster.node(node_id).start()
    cluster.node(node_id).wait_ready()
    wait_until(lambda: all(len(isr) == 3 for _, _, isr in describe(boot, topic)[0].values()), 60,
               what="the ISR grows back to 3")


def test_isr_and_preferred_leader_election_with_kafka_tools(tmp_path):
    cluster = Cluster(tmp_path, n=3, session_timeout_ms=3000, extra_env={
        "CHRONIK_CLUSTER_REPLICA_LAG_TIME_MAX_MS": "3000",
        "CHRONIK_CLUSTER_LEADER_REBALANCE_INTERVAL_MS": "0",
    })
    try:
        cluster.start()
        boot = cluster.bootstrap
        tool(TOPICS, "--bootstrap-server", boot, "--create", "--topic", "led", "--partitions", "3",
             "--replication-factor", "3", "--config", "min.insync.replicas=2")
        wait_until(lambda: preferred_everywhere(describe(boot, "led")[0]), 30,
                   what="preferred leaders and full ISRs")
        produce_some(boot, "led")
        stop_and_return(cluster, boot, "led", 1)
        parts, _ = describe(boot, "led")
        led_by_others = [p for p, (leader, replicas, _) in parts.items() if leader != replicas[0]]
        assert led_by_others, f"broker 1's partitions stay with their new leaders: {parts}"
        out = tool(ELECTION, "--bootstrap-server", boot, "--election-type", "PREFERRED",
                   "--all-topic-partitions")
        print(out)
        assert "Successfully completed leader election" in out, out
        parts, described = describe(boot, "led")
        print(described)
        assert preferred_everywhere(parts), parts
        # Asked again: nothing to do, and the tool says so.
        out = tool(ELECTION, "--bootstrap-server", boot, "--election-type", "PREFERRED",
                   "--topic", "led", "--partition", "0")
        print(out)
        assert "Valid replica already elected" in out or "No election needed" in out, out
    finally:
        cluster.stop()


def test_leaderships_return_to_preferred_replicas_by_themselves(tmp_path):
    cluster = Cluster(tmp_path, n=3, session_timeout_ms=3000, extra_env={
        "CHRONIK_CLUSTER_REPLICA_LAG_TIME_MAX_MS": "3000",
        "CHRONIK_CLUSTER_LEADER_REBALANCE_INTERVAL_MS": "2000",
    })
    try:
        cluster.start()
        boot = cluster.bootstrap
        tool(TOPICS, "--bootstrap-server", boot, "--create", "--topic", "auto", "--partitions", "3",
             "--replication-factor", "3")
        wait_until(lambda: preferred_everywhere(describe(boot, "auto")[0]), 30,
                   what="preferred leaders and full ISRs")
        stop_and_return(cluster, boot, "auto", 2)
        wait_until(lambda: preferred_everywhere(describe(boot, "auto")[0]), 30,
                   what="leaderships back at the preferred replicas")
    finally:
        cluster.stop()
