"""Partition reassignment with Kafka's own `kafka-reassign-partitions`: a broker-only node joins
three voters, and partitions move onto it while a producer writes `acks=all` without pause.

- `--execute` starts the moves (AlterPartitionReassignments); while they run, `--list` and
  `--verify` show them in progress (ListPartitionReassignments), and the partition has the new
  replicas followed by the ones leaving;
- the new replica copies the partition from its leader and joins the in-sync set; the
  controller then finishes the move: the leaving replica is dropped (a leader that leaves hands
  over to a replica that stays), and its log directory is removed;
- `--verify` reports every move completed (and clears throttles, which it may);
- every acknowledged record is read back once, at its offset, and none is lost;
- a move to a broker that does not exist is refused; `--cancel` after the moves finished
  cancels nothing and moves nothing back.

Needs the tool classpath of the kafka-cli suite (CHRONIK_TOOLS_CLASSPATH, made by cluster.sh).
Bounded: every wait has a deadline, the producer stops after the check.
"""

import json
import os
import re
import subprocess
import threading
import time

from confluent_kafka import Consumer, Producer, TopicPartition

from cluster_lib import Cluster
from reliability_lib import wait_until
from test_cluster_clients import TOPICS, tool

REASSIGN = "org.apache.kafka.tools.reassign.ReassignPartitionsCommand"


def tool_raw(cls, *args, timeout=120):
    """(exit code, output) of one Kafka tool run, for runs expected to fail."""
    cp = open(os.environ["CHRONIK_TOOLS_CLASSPATH"]).read().strip()
    r = subprocess.run(["java", "-Xmx256m", "-XX:TieredStopAtLevel=1", "-cp", cp, cls, *args],
                       capture_output=True, text=True, timeout=timeout)
    return r.returncode, r.stdout + r.stderr


def describe(boot, topic):
    """{partition: (leader, replicas, isr)} as `kafka-topics --describe` prints it."""
    out = tool(TOPICS, "--bootstrap-server", boot, "--describe", "--topic", topic)
    parts = {}
    for m in re.finditer(r"Partition: (\d+)\s+Leader: (-?\d+)\s+Replicas: ([\d,]*)\s+Isr: ([\d,]*)",
                         out):
        ids = lambda s: [int(x) for x in s.split(",") if x]  # noqa: E731
        parts[int(m.group(1))] = (int(m.group(2)), ids(m.group(3)), ids(m.group(4)))
    return parts


class Writer(threading.Thread):
    """An idempotent acks=all producer writing v0, v1, … round the partitions until stopped."""

    def __init__(self, boot, topic, partitions):
        super().__init__(daemon=True)
        self.p = Producer({"bootstrap.servers": boot, "acks": "all", "enable.idempotence": True,
                           "linger.ms": 5, "log_level": 2})
        self.topic, self.partitions = topic, partitions
        self.acked, self.failed = {}, []
        self.stop = threading.Event()

    def report(self, err, msg):
        if err is None:
            self.acked[msg.value().decode()] = (msg.partition(), msg.offset())
        else:
            self.failed.append(err.name())

    def run(self):
        i = 0
        deadline = time.monotonic() + 300
        while not self.stop.is_set() and time.monotonic() < deadline:
            self.p.produce(self.topic, value=f"v{i}".encode(), partition=i % self.partitions,
                           on_delivery=self.report)
            self.p.poll(0)
            i += 1
            if i % 50 == 0:
                time.sleep(0.02)
        self.left = self.p.flush(60)


def read_all(boot, topic, partitions):
    c = Consumer({"bootstrap.servers": boot, "group.id": "reassign-check",
                  "enable.auto.commit": False, "log_level": 2})
    out = {}
    try:
        highs = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                 for p in range(partitions)}
        c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any(
                sum(1 for (q, _) in out if q == p) < highs[p] for p in range(partitions)):
            m = c.poll(0.5)
            if m is not None and not m.error():
                out[(m.partition(), m.offset())] = m.value().decode()
    finally:
        c.close()
    return out, highs


def test_kafka_reassign_partitions_moves_onto_a_new_broker(tmp_path):
    cluster = Cluster(tmp_path, n=4, voters=3, session_timeout_ms=3000, extra_env={
        "CHRONIK_CLUSTER_REPLICA_LAG_TIME_MAX_MS": "3000"})
    writer = None
    try:
        cluster.start()
        boot = cluster.bootstrap
        wait_until(lambda: all(n.metadata()["brokers"] == [1, 2, 3, 4] for n in cluster.nodes),
                   30, what="four brokers")
        tool(TOPICS, "--bootstrap-server", boot, "--create", "--topic", "moving",
             "--replica-assignment", "1:2,2:3,3:1", "--config", "min.insync.replicas=2")
        wait_until(lambda: all(len(isr) == 2 for _, _, isr in describe(boot, "moving").values()),
                   30, what="two in-sync replicas per partition")
        writer = Writer(boot, "moving", 3)
        writer.start()
        wait_until(lambda: len(writer.acked) > 3000, 60, what="records acknowledged before")

        # Partition 0 loses its leader (1) to the new broker 4; 1 and 2 take 4 beside a
        # replica they keep.
        plan = {"version": 1, "partitions": [
            {"topic": "moving", "partition": 0, "replicas": [4, 2]},
            {"topic": "moving", "partition": 1, "replicas": [2, 4]},
            {"topic": "moving", "partition": 2, "replicas": [3, 4]},
        ]}
        spec = tmp_path / "plan.json"
        spec.write_text(json.dumps(plan))
        started = time.monotonic()
        out = tool(REASSIGN, "--bootstrap-server", boot, "--reassignment-json-file", str(spec),
                   "--execute")
        print(out)
        assert "Successfully started partition reassignments" in out, out

        def done():
            out = tool(REASSIGN, "--bootstrap-server", boot, "--reassignment-json-file",
                       str(spec), "--verify")
            return out if out.count("is completed") == 3 else None
        verified = wait_until(done, 90, interval=1, what="every move completed")
        took = time.monotonic() - started
        print(verified)
        parts = describe(boot, "moving")
        print(f"after {took:.1f} s: {parts}")
        assert parts[0][1] == [4, 2] and parts[0][0] in (4, 2), parts
        assert parts[1][1] == [2, 4] and parts[2][1] == [3, 4], parts
        assert all(sorted(isr) == sorted(reps) for _, reps, isr in parts.values()), parts
        listed = tool(REASSIGN, "--bootstrap-server", boot, "--list")
        assert "No partition reassignments found" in listed, listed
        # Broker 1 holds no replica of the topic any more: its directories go.
        wait_until(lambda: not list((cluster.node(1).workdir / "data").glob("moving-*")), 30,
                   what="node 1 removing the logs it no longer holds")

        wait_until(lambda: len(writer.acked) > 8000, 60, what="records acknowledged after")
        writer.stop.set()
        writer.join(90)
        assert writer.left == 0
        final, highs = read_all(boot, "moving", 3)
        at = {v: po for po, v in final.items()}
        lost = [v for v, po in writer.acked.items() if at.get(v) != po]
        dup = len(final) - len(set(final.values()))
        print(f"{len(writer.acked)} acknowledged, {len(writer.failed)} failed "
              f"({set(writer.failed)}), final read {len(final)} records to {highs}: "
              f"lost or moved {len(lost)}, duplicated {dup}")
        assert not lost, lost[:10]
        assert dup == 0

        # A broker that does not exist, and a cancellation once nothing is in progress.
        bad = tmp_path / "bad.json"
        bad.write_text(json.dumps({"version": 1, "partitions": [
            {"topic": "moving", "partition": 1, "replicas": [2, 9]}]}))
        rc, out = tool_raw(REASSIGN, "--bootstrap-server", boot, "--reassignment-json-file",
                           str(bad), "--execute")
        print(out[-1500:])
        # The tool checks broker ids itself before it asks (the broker's own refusal,
        # INVALID_REPLICA_ASSIGNMENT, is covered by metadata::placement's tests).
        assert rc != 0 and ("Unknown broker id 9" in out or "InvalidReplicaAssignment" in out), \
            out[-3000:]
        rc, out = tool_raw(REASSIGN, "--bootstrap-server", boot, "--reassignment-json-file",
                           str(spec), "--cancel")
        # Kafka's tool cancels only what ListPartitionReassignments shows in progress: nothing.
        assert rc == 0, out[-3000:]
        assert describe(boot, "moving")[1][1] == [2, 4], "nothing moved"
    finally:
        if writer is not None:
            writer.stop.set()
        cluster.stop()


CONFIGS = "org.apache.kafka.tools.ConfigCommand"


def test_a_throttled_move_takes_the_rate_and_verify_clears_it(tmp_path):
    """`--throttle 300000` (300 KB/s): the new replica copies 3 MB in about ten seconds rather
    than one; meanwhile the brokers show the rate as dynamic configs and the topic lists the
    throttled replicas; `--verify` removes them all once the move finished."""
    cluster = Cluster(tmp_path, n=4, voters=3, session_timeout_ms=3000)
    try:
        cluster.start()
        boot = cluster.bootstrap
        wait_until(lambda: all(n.metadata()["brokers"] == [1, 2, 3, 4] for n in cluster.nodes),
                   30, what="four brokers")
        tool(TOPICS, "--bootstrap-server", boot, "--create", "--topic", "slow",
             "--replica-assignment", "1:2")
        p = Producer({"bootstrap.servers": boot, "acks": "all", "linger.ms": 5, "log_level": 2})
        for i in range(3000):
            p.produce("slow", value=f"s{i}".ljust(1000, ".").encode(), partition=0)
            p.poll(0)
        assert p.flush(60) == 0
        spec = tmp_path / "slow.json"
        spec.write_text(json.dumps({"version": 1, "partitions": [
            {"topic": "slow", "partition": 0, "replicas": [1, 4]}]}))
        started = time.monotonic()
        out = tool(REASSIGN, "--bootstrap-server", boot, "--reassignment-json-file", str(spec),
                   "--execute", "--throttle", "300000")
        print(out)
        assert "throttle limit was set to 300000 B/s" in out, out
        described = tool(CONFIGS, "--bootstrap-server", boot, "--describe", "--entity-type",
                         "brokers", "--entity-name", "4")
        print(described)
        assert "follower.replication.throttled.rate=300000" in described, described
        topic_cfg = tool(CONFIGS, "--bootstrap-server", boot, "--describe", "--entity-type",
                         "topics", "--entity-name", "slow")
        assert "follower.replication.throttled.replicas=0:4" in topic_cfg, topic_cfg

        def done():
            out = tool(REASSIGN, "--bootstrap-server", boot, "--reassignment-json-file",
                       str(spec), "--verify")
            return out if "is completed" in out else None
        verified = wait_until(done, 120, interval=1, what="the throttled move completed")
        took = time.monotonic() - started
        print(verified)
        print(f"3 MB moved at a 300 KB/s throttle in {took:.1f} s")
        assert took >= 6, f"a 3 MB copy at 300 KB/s finished after {took:.1f} s"
        assert "Clearing broker-level throttles" in verified, verified
        described = tool(CONFIGS, "--bootstrap-server", boot, "--describe", "--entity-type",
                         "brokers", "--entity-name", "4")
        assert "throttled.rate" not in described, described
        topic_cfg = tool(CONFIGS, "--bootstrap-server", boot, "--describe", "--entity-type",
                         "topics", "--entity-name", "slow")
        assert "throttled.replicas=0" not in topic_cfg, topic_cfg
        assert describe(boot, "slow")[0][1] == [1, 4]
    finally:
        cluster.stop()
