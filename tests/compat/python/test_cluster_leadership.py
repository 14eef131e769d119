"""Leadership of replicated partitions with Kafka's own tools: `kafka-topics --describe` shows the
in-sync set shrink when a broker stops and grow when it is back; `kafka-leader-election
--election-type preferred` moves leaderships back to the preferred replicas; with automatic
rebalancing on, the controller does that by itself.

Needs the tool classpath of the kafka-cli suite (CHRONIK_TOOLS_CLASSPATH, made by cluster.sh).
Bounded: every wait has a deadline.
"""

import re
import time

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


DELETE_RECORDS = "org.apache.kafka.tools.DeleteRecordsCommand"


def earliest_and_first(boot, topic, partition):
    """(earliest offset ListOffsets answers, first offset a consumer from the beginning reads)."""
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": boot, "group.id": f"dr-{time.monotonic_ns()}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False, "log_level": 2})
    try:
        low, _high = c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
        c.assign([TopicPartition(topic, partition, -2)])
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and not m.error():
                return low, m.offset()
        return low, None
    finally:
        c.close()


def test_delete_records_reaches_every_replica(tmp_path):
    """`kafka-delete-records` on a partition with three replicas answers once the followers also
    dropped the records, so a leader elected afterwards starts at the new log start too (the
    deleted records never come back)."""
    cluster = Cluster(tmp_path, n=3, session_timeout_ms=3000)
    try:
        cluster.start()
        boot = cluster.bootstrap
        tool(TOPICS, "--bootstrap-server", boot, "--create", "--topic", "dr", "--partitions", "1",
             "--replication-factor", "3", "--config", "min.insync.replicas=2")
        p = Producer({"bootstrap.servers": boot, "acks": "all", "enable.idempotence": True})
        for i in range(200):
            p.produce("dr", value=f"v{i}".encode(), partition=0)
        assert p.flush(60) == 0
        spec = tmp_path / "delete.json"
        spec.write_text('{"version": 1, "partitions": [{"topic": "dr", "partition": 0, '
                        '"offset": 120}]}')
        started = time.monotonic()
        out = tool(DELETE_RECORDS, "--bootstrap-server", boot, "--offset-json-file", str(spec))
        took = time.monotonic() - started
        print(out)
        assert re.search(r"partition: dr-0\s+low_watermark: 120", out), out
        assert earliest_and_first(boot, "dr", 0) == (120, 120)
        # The leader goes away twice: each new leader had dropped the records already.
        for _ in range(2):
            leader, _, _ = describe(boot, "dr")[0][0]
            cluster.node(leader).stop()
            wait_until(lambda: describe(boot, "dr")[0][0][0] not in (-1, leader), 30,
                       what="a new leader")
            low_first = earliest_and_first(boot, "dr", 0)
            print(f"leader {leader} stopped: new leader {describe(boot, 'dr')[0][0][0]}, "
                  f"earliest offset and first record read {low_first}")
            assert low_first == (120, 120), low_first
            cluster.node(leader).start()
            cluster.node(leader).wait_ready()
            wait_until(lambda: len(describe(boot, "dr")[0][0][2]) == 3, 60,
                       what="the ISR back to 3")
        print(f"kafka-delete-records answered after {took:.1f} s (tool start included)")
    finally:
        cluster.stop()
