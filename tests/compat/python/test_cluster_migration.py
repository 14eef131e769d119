"""A single node's data directory moved into a cluster: the node ran alone (no voters) with a
topic, records and a consumer group's committed offsets; restarted as node 1 of a three-node
cluster (two new nodes on empty directories), it brings its topic (same id, same records) and the
group's offsets along, the offsets land in `__consumer_offsets`, and everything keeps working:
produce, consume and commit through the cluster. Its single-node log is kept as
`metadata.migrated`, and a second restart moves nothing again.

Bounded: every wait has a deadline.
"""

import os
import subprocess
import time
from pathlib import Path

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from cluster_lib import Cluster
from reliability_lib import free_port, port_open, wait_until

TOPIC = "legacy-orders"
GROUP = "legacy-group"
# A tiered topic: its older segments are only in the remote tier when the node joins a cluster,
# and the states of those segments move from the metadata log into __remote_log_metadata.
TIERED = "legacy-tiered"
TIERED_RECORDS = 6000
VALUE = 1000


def run_single_node(data_dir, remote_dir):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHRONIK_")}
    env.update({
        "CHRONIK_HTTP_LISTEN": '""',
        "CHRONIK_TIERING_URL": f'"file://{remote_dir}"',
        "CHRONIK_TIERING_INTERVAL_MS": "200",
        "RUST_LOG": "info",
    })
    log = open(Path(data_dir).parent / "single.log", "ab")
    proc = subprocess.Popen(
        [os.environ["CHRONIK_BIN_PATH"], "serve", "--listen", f"127.0.0.1:{port}",
         "--data-dir", str(data_dir)],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
    wait_until(lambda: port_open(port), 60, what="single node listening")
    return proc, f"127.0.0.1:{port}"


def read_all(bootstrap, partitions, group=None, timeout=30):
    conf = {"bootstrap.servers": bootstrap, "group.id": group or "reader",
            "auto.offset.reset": "earliest", "enable.auto.commit": False}
    c = Consumer(conf)
    c.assign([TopicPartition(TOPIC, p, 0) for p in range(partitions)])
    got = []
    deadline = time.monotonic() + timeout
    want = None
    while time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            got.append(m.value().decode())
        if want is None:
            try:
                want = sum(c.get_watermark_offsets(TopicPartition(TOPIC, p), timeout=5)[1]
                           for p in range(partitions))
            except KafkaException as e:
                # A partition whose only replica is restarting has no leader for a moment.
                print("watermarks:", e)
        if want is not None and len(got) >= want:
            break
    c.close()
    return got


def tiered_local_logs(data_dir):
    return len(list((data_dir / f"{TIERED}-0").glob("*.log")))


def produce_tiered(bootstrap, start, count):
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5, "log_level": 2})
    for i in range(start, start + count):
        p.produce(TIERED, value=f"t{i}".ljust(VALUE, ".").encode(), partition=0)
        p.poll(0)
    assert p.flush(60) == 0


def read_tiered(bootstrap, want, timeout=60):
    """(offset, value) of partition 0 from offset 0, until `want` records or the deadline."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"tiered-{time.monotonic_ns()}",
                  "enable.auto.commit": False, "log_level": 2})
    got = []
    try:
        c.assign([TopicPartition(TIERED, 0, 0)])
        deadline = time.monotonic() + timeout
        while len(got) < want and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and not m.error():
                got.append((m.offset(), m.value().decode().rstrip(".")))
    finally:
        c.close()
    return got


def test_a_single_node_directory_joins_a_cluster(tmp_path):
    node1_data = tmp_path / "node1" / "data"
    node1_data.mkdir(parents=True)
    remote = tmp_path / "remote"
    proc, bootstrap = run_single_node(node1_data, remote)
    try:
        admin = AdminClient({"bootstrap.servers": bootstrap})
        admin.create_topics([NewTopic(TOPIC, 2, 1)])[TOPIC].result(20)
        p = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
        for i in range(200):
            p.produce(TOPIC, value=f"before-{i}".encode(), partition=i % 2)
        assert p.flush(30) == 0
        c = Consumer({"bootstrap.servers": bootstrap, "group.id": GROUP,
                      "auto.offset.reset": "earliest", "enable.auto.commit": False})
        c.commit(offsets=[TopicPartition(TOPIC, 0, 60), TopicPartition(TOPIC, 1, 70)],
                 asynchronous=False)
        c.close()
        admin.create_topics([NewTopic(TIERED, 1, 1, config={
            "remote.storage.enable": "true", "segment.bytes": str(1 << 20),
            "local.retention.bytes": "1"})])[TIERED].result(20)
        produce_tiered(bootstrap, 0, TIERED_RECORDS)
        wait_until(lambda: tiered_local_logs(node1_data) == 1, 90, interval=0.5,
                   what="the tiered topic down to its active segment on disk")
    finally:
        proc.terminate()
        proc.wait(20)
    assert proc.returncode == 0
    remote_logs = len(list(remote.rglob("*.log")))
    assert remote_logs >= 4, remote_logs

    cluster = Cluster(tmp_path, n=3, session_timeout_ms=3000)
    try:
        cluster.start()
        log1 = cluster.node(1).log_text()
        assert "moved this node's single-node metadata into the cluster" in log1, log1[-3000:]
        assert (node1_data / "__chronik" / "metadata.migrated").is_dir()
        boot = cluster.bootstrap
        admin = AdminClient({"bootstrap.servers": boot})
        # The controller may see the moved partitions before node 1's registration and leave
        # them leaderless for a moment; once node 1 is registered it leads them again.
        def led_by_node1():
            parts = admin.list_topics(TOPIC, timeout=10).topics[TOPIC].partitions
            return parts if sorted(parts) == [0, 1] and all(
                parts[i].leader == 1 for i in parts) else None
        wait_until(led_by_node1, 30, what="node 1 leading both moved partitions")
        values = read_all(boot, 2)
        assert sorted(values) == sorted(f"before-{i}" for i in range(200)), len(values)

        # The group's offsets came along (read by its coordinator, from __consumer_offsets).
        c = Consumer({"bootstrap.servers": boot, "group.id": GROUP,
                      "auto.offset.reset": "earliest", "enable.auto.commit": False})

        def committed():
            try:
                got = c.committed([TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)], timeout=5)
                return {tp.partition: tp.offset for tp in got}
            except Exception as e:  # COORDINATOR_LOAD_IN_PROGRESS and the like are retried
                print("committed():", e)
                return None
        wait_until(lambda: committed() == {0: 60, 1: 70}, 40, what="migrated offsets")
        c.commit(offsets=[TopicPartition(TOPIC, 0, 61)], asynchronous=False)
        assert committed() == {0: 61, 1: 70}
        c.close()
        assert "__consumer_offsets" in admin.list_topics(timeout=10).topics
        moved = [line for line in cluster.node(1).log_text().splitlines()
                 if "moved committed offsets from the metadata log" in line]
        print(f"migration: topic {TOPIC} and group {GROUP} moved; {len(moved)} offsets "
              f"partition(s) took over offsets from the metadata log")

        # The tiered topic's remote segments are read through the cluster, their states now
        # in __remote_log_metadata (moved there by the leader of their metadata partition).
        def moved_states():
            return any("moved remote segment states from the metadata log into "
                       "__remote_log_metadata" in n.log_text() for n in cluster.nodes)
        wait_until(moved_states, 40, what="remote segment states moved into the internal topic")
        topics = admin.list_topics(timeout=10).topics
        assert "__remote_log_metadata" in topics
        wait_until(lambda: topics[TIERED].partitions[0].leader == 1 or None, 30,
                   what="node 1 leading the tiered topic")
        got = read_tiered(boot, TIERED_RECORDS)
        assert got == [(i, f"t{i}") for i in range(TIERED_RECORDS)], \
            f"{len(got)} records read back, first wrong: " \
            f"{next((g for i, g in enumerate(got) if g != (i, f't{i}')), None)}"
        # New segments go up with their states in the topic, after the moved ones.
        produce_tiered(boot, TIERED_RECORDS, 3000)
        wait_until(lambda: len(list(remote.rglob("*.log"))) >= remote_logs + 2, 60, interval=0.5,
                   what="segments written in the cluster copied to the remote tier")
        wait_until(lambda: tiered_local_logs(node1_data) <= 2, 60, interval=0.5,
                   what="their local copies deleted")
        got = read_tiered(boot, TIERED_RECORDS + 3000)
        assert got == [(i, f"t{i}") for i in range(TIERED_RECORDS + 3000)], len(got)
        print(f"tiered topic: {remote_logs} remote segments moved in, "
              f"{len(list(remote.rglob('*.log')))} after 3000 more records; "
              f"{len(got)} records read back in order")

        # The cluster goes on with the moved topic.
        p = Producer({"bootstrap.servers": boot, "acks": "all"})
        for i in range(50):
            p.produce(TOPIC, value=f"after-{i}".encode(), partition=i % 2)
        assert p.flush(30) == 0
        assert len(read_all(boot, 2)) == 250

        # A restart moves nothing again.
        cluster.node(1).stop()
        cluster.node(1).start()
        cluster.node(1).wait_ready()
        last_run = cluster.node(1).log_text().rsplit("=== start at", 1)[-1]
        assert "moved this node's single-node metadata" not in last_run
        wait_until(lambda: len(read_all(boot, 2, timeout=10)) == 250, 40,
                   what="all records after the restart")
        assert "moved remote segment states" not in last_run
        got = read_tiered(boot, TIERED_RECORDS + 3000)
        assert got == [(i, f"t{i}") for i in range(TIERED_RECORDS + 3000)], len(got)
    finally:
        cluster.stop()
