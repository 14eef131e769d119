"""Replicas rebuilt from the remote tier (KIP-405), with a topic whose leader keeps only its
newest segment on disk (`local.retention.bytes=1`) and uploads the rest to the shared remote
tier (`file://`, as every node of the harness shares):

- a follower stopped while its leader moved 9 MB of segments to the remote tier comes back
  far behind the leader's local log: the leader answers OFFSET_MOVED_TO_TIERED_STORAGE, and the
  follower starts its log at the remote tier's end instead of copying that history;
- a follower whose disk was emptied (data directory removed) starts its log at the remote
  tier's end too, and rejoins the cluster, which sends it the metadata log again;
- each time it is back in the in-sync set with a fraction of the partition on its disk, and
  once it leads, a consumer reads every record ever acknowledged, once and in order, through it.

The cluster: three voters and a broker-only fourth node; the partition's replicas are nodes 1
and 4. Bounded: every wait has a deadline.
"""

import shutil
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from cluster_lib import Cluster
from reliability_lib import wait_until

TOPIC = "rebuilt"
SEGMENT = 1 << 20  # the smallest segment.bytes
VALUE = 1000


def produce(boot, start, count):
    p = Producer({"bootstrap.servers": boot, "acks": "all", "enable.idempotence": True,
                  "linger.ms": 5, "log_level": 2})
    failed = []
    for i in range(start, start + count):
        p.produce(TOPIC, value=f"r{i}".ljust(VALUE, ".").encode(), partition=0,
                  on_delivery=lambda err, _m: err and failed.append(err))
        p.poll(0)
    assert p.flush(60) == 0 and not failed, failed[:3]


def local_bytes(node):
    d = node.workdir / "data" / f"{TOPIC}-0"
    return sum(f.stat().st_size for f in d.glob("*.log")) if d.is_dir() else 0


def remote_segments(cluster):
    return len(list((cluster.workdir / "remote").rglob("*.log")))


def isr(cluster, node_id):
    parts = cluster.node(node_id).partitions()["topics"].get(TOPIC, {})
    return parts.get(0, {}).get("isr", [])


def read_everything(boot, want):
    c = Consumer({"bootstrap.servers": boot, "group.id": f"rebuild-{time.monotonic_ns()}",
                  "enable.auto.commit": False, "log_level": 2})
    got = []
    try:
        c.assign([TopicPartition(TOPIC, 0, 0)])
        deadline = time.monotonic() + 60
        while len(got) < want and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and not m.error():
                got.append((m.offset(), m.value().decode().rstrip(".")))
    finally:
        c.close()
    return got


def wait_tiered(cluster, leader, at_least):
    wait_until(lambda: remote_segments(cluster) >= at_least
               and local_bytes(leader) < 3 * SEGMENT, 90, interval=0.5,
               what=f"the leader keeping only its newest segments, {at_least}+ in the remote tier")


def test_followers_rebuild_from_the_remote_tier(tmp_path):
    cluster = Cluster(tmp_path, n=4, voters=3, session_timeout_ms=3000, extra_env={
        "CHRONIK_TIERING_INTERVAL_MS": "200",
        "CHRONIK_CLUSTER_REPLICA_LAG_TIME_MAX_MS": "3000",
        "CHRONIK_CLUSTER_LEADER_REBALANCE_INTERVAL_MS": "0",
    })
    try:
        cluster.start()
        n1, n4 = cluster.node(1), cluster.node(4)
        wait_until(lambda: all(n.metadata()["brokers"] == [1, 2, 3, 4] for n in cluster.nodes),
                   30, what="four brokers")
        admin = AdminClient({"bootstrap.servers": cluster.bootstrap, "log_level": 2})
        f = admin.create_topics([NewTopic(TOPIC, num_partitions=1, replica_assignment=[[1, 4]], config={
            "remote.storage.enable": "true", "segment.bytes": str(SEGMENT),
            "local.retention.bytes": "1", "min.insync.replicas": "1"})], operation_timeout=20)
        f[TOPIC].result(30)
        wait_until(lambda: sorted(isr(cluster, 1)) == [1, 4], 30, what="ISR [1, 4]")
        produce(cluster.bootstrap, 0, 1000)

        # A: node 4 stopped while the leader tiers 9 MB away.
        n4.stop()
        wait_until(lambda: isr(cluster, 1) == [1], 30, what="node 4 out of the ISR")
        produce(cluster.bootstrap, 1000, 9000)
        wait_tiered(cluster, n1, 8)
        n4.start()
        n4.wait_ready()
        wait_until(lambda: sorted(isr(cluster, 1)) == [1, 4], 60, what="node 4 back in sync")
        assert "continuing at the remote tier's end" in n4.run_log(), \
            "the follower copied history instead of starting above the remote tier"
        produced = 10000 * VALUE
        print(f"A: node 4 back in sync holding {local_bytes(n4)} bytes of {produced} produced; "
              f"{remote_segments(cluster)} remote segments")
        assert local_bytes(n4) < produced // 4

        # B: node 4's disk emptied.
        n4.stop()
        wait_until(lambda: isr(cluster, 1) == [1], 30, what="node 4 out of the ISR")
        produce(cluster.bootstrap, 10000, 2000)
        wait_tiered(cluster, n1, 10)
        shutil.rmtree(n4.workdir / "data")
        n4.start()
        n4.wait_ready()
        wait_until(lambda: sorted(isr(cluster, 1)) == [1, 4], 60, what="the empty node 4 in sync")
        produced = 12000 * VALUE
        print(f"B: empty node 4 in sync holding {local_bytes(n4)} bytes of {produced} produced")
        assert local_bytes(n4) < produced // 4

        # Node 4 leads: every record, from both tiers, through it.
        n1.stop()
        wait_until(lambda: cluster.node(2).partitions()["topics"][TOPIC][0]["leader"] == 4, 30,
                   what="node 4 leading")
        boot = cluster.bootstrap_of([2, 3, 4])
        got = read_everything(boot, 12000)
        print(f"read through node 4: {len(got)} records")
        assert got == [(i, f"r{i}") for i in range(12000)], \
            f"first mismatch: {next((g, i) for i, g in enumerate(got) if g != (i, f'r{i}'))}"
        produce(boot, 12000, 100)
    finally:
        cluster.stop()
