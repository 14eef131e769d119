"""Three brokers of one cluster (each also a controller voter), as separate processes on
loopback, with real clients and real faults:

- Metadata and DescribeCluster list the three brokers and the active controller; a topic's
  partitions are led by different brokers, and produce/consume through all of them returns every
  acknowledged record exactly once;
- a broker hung with SIGSTOP past the session timeout is fenced: it leaves the broker list, its
  partitions lose their leader (one replica each until replication exists) and the group
  coordinators it held move; SIGCONT brings it back and it leads its partitions again;
- SIGTERM is a controlled shutdown: leaderships move before the process exits, not after the
  session timeout; restarted on its data, the broker serves its partitions again;
- a consumer group whose coordinator is killed with SIGKILL continues from its committed offsets
  on the new coordinator.

Bounded: every wait has a deadline; the cluster's session timeout is 3 s.
"""

import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from cluster_lib import Cluster
from reliability_lib import wait_until

SESSION_S = 3.0


def admin_of(bootstrap):
    return AdminClient({"bootstrap.servers": bootstrap, "log_level": 2})


def live_brokers(bootstrap):
    """The brokers Metadata lists; None when no node answered in time (a hung one was asked)."""
    try:
        return sorted(admin_of(bootstrap).list_topics(timeout=5).brokers)
    except KafkaException:
        return None


def leaders(bootstrap, topic):
    md = admin_of(bootstrap).list_topics(topic, timeout=10)
    return {p: m.leader for p, m in md.topics[topic].partitions.items()}


def create(bootstrap, topic, partitions):
    admin = admin_of(bootstrap)  # kept until the answer came: the future dies with its client
    f = admin.create_topics([NewTopic(topic, partitions, 1)], operation_timeout=20)
    f[topic].result(30)


def produce(bootstrap, topic, values_by_partition):
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "log_level": 2,
                  "message.timeout.ms": 20000})
    acked, failed = [], []

    def report(err, msg):
        (failed if err else acked).append((msg.partition(), msg.offset(), msg.value()))

    for partition, values in values_by_partition.items():
        for v in values:
            p.produce(topic, value=v, partition=partition, on_delivery=report)
    assert p.flush(30) == 0, "records left unacknowledged"
    assert not failed, f"produce failed: {failed[:3]}"
    return acked


def coordinator_of(bootstrap, group):
    admin = admin_of(bootstrap)
    g = admin.describe_consumer_groups([group])[group].result(20)
    return g.coordinator.id


def consume(bootstrap, topic, group, want, timeout=40, commit=True):
    """Reads until `want` records came (or the deadline); commits what it read."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False, "log_level": 2, "session.timeout.ms": 10000})
    c.subscribe([topic])
    got = []
    deadline = time.monotonic() + timeout
    try:
        while len(got) < want and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None or m.error():
                continue
            got.append((m.partition(), m.offset(), m.value()))
        if commit and got:
            c.commit(asynchronous=False)
    finally:
        c.close()
    return got


def test_brokers_lead_fence_and_hand_over(tmp_path):
    cluster = Cluster(tmp_path, n=3, session_timeout_ms=int(SESSION_S * 1000))
    try:
        cluster.start()
        boot = cluster.bootstrap

        # Every broker listed, and one active controller among them.
        wait_until(lambda: live_brokers(boot) == [1, 2, 3], 30, what="three brokers listed")
        cluster_ids = set()
        for n in cluster.nodes:
            admin = admin_of(n.bootstrap)
            md = admin.list_topics(timeout=10)
            assert sorted(md.brokers) == [1, 2, 3], f"node {n.id} lists {sorted(md.brokers)}"
            assert md.controller_id in (1, 2, 3)
            described = admin.describe_cluster().result(10)
            assert sorted(b.id for b in described.nodes) == [1, 2, 3]
            cluster_ids.update({md.cluster_id, described.cluster_id})
        assert len(cluster_ids) == 1, f"nodes disagree on the cluster id: {cluster_ids}"
        print(f"brokers [1, 2, 3], cluster id {cluster_ids.pop()}")

        # Partitions led by different brokers; every record back exactly once.
        create(boot, "spread", 6)
        led = leaders(boot, "spread")
        assert set(led.values()) == {1, 2, 3}, f"leaders not spread: {led}"
        values = {p: [f"{p}-{i}".encode() for i in range(100)] for p in range(6)}
        acked = produce(boot, "spread", values)
        got = consume(boot, "spread", "spread-readers", 600)
        assert sorted(got) == sorted(acked), f"read {len(got)} of {len(acked)} acknowledged records"
        print(f"spread: leaders {led}; {len(acked)} records produced and read back")

        # A hung broker is fenced after the session timeout, and comes back.
        victim = cluster.node(2)
        victim_partitions = sorted(p for p, leader in led.items() if leader == 2)
        victim.pause()
        paused = time.monotonic()
        others = ",".join(n.bootstrap for n in cluster.nodes if n is not victim)
        wait_until(lambda: live_brokers(others) == [1, 3], SESSION_S * 4, interval=0.1,
                   what="the hung broker fenced")
        fenced_after = time.monotonic() - paused
        now_led = leaders(others, "spread")
        assert all(now_led[p] == -1 for p in victim_partitions), now_led
        offsets_leaders = set(leaders(others, "__consumer_offsets").values())
        assert 2 not in offsets_leaders, f"offsets partitions still led by the fenced broker: {offsets_leaders}"
        print(f"SIGSTOP node 2: fenced after {fenced_after:.1f} s (session timeout {SESSION_S} s); "
              f"partitions {victim_partitions} without leader, group coordinators moved")
        # The last heartbeat may have left up to one interval before the pause.
        heartbeat_s = max(0.1, SESSION_S / 6)
        assert fenced_after >= SESSION_S - heartbeat_s - 0.05, "fenced before the session timeout"
        victim.resume()
        wait_until(lambda: live_brokers(boot) == [1, 2, 3], 20, interval=0.1, what="node 2 unfenced")
        wait_until(lambda: leaders(boot, "spread") == led, 20, what="node 2 leads its partitions again")
        more = produce(boot, "spread", {p: [b"after-resume"] for p in victim_partitions})
        assert all(o == 100 for _, o, _ in more), f"offsets continue where they were: {more}"

        # SIGTERM: leaderships move before the process exits.
        leaving = cluster.node(3)
        leaving.proc.send_signal(15)
        stopping = time.monotonic()
        leaving.proc.wait(30)
        exited_after = time.monotonic() - stopping
        brokers_now = live_brokers(others)
        print(f"SIGTERM node 3: exited after {exited_after:.2f} s; brokers then {brokers_now}")
        assert brokers_now == [1, 2], "a broker that shut down is no longer listed at once"
        assert 3 not in set(leaders(others, "__consumer_offsets").values())
        leaving.start()
        leaving.wait_ready()
        wait_until(lambda: live_brokers(boot) == [1, 2, 3], 20, what="node 3 back")
        wait_until(lambda: leaders(boot, "spread") == led, 20, what="node 3 leads its partitions again")

        # A group whose coordinator is killed continues from its committed offsets.
        group = "handover"
        first = consume(boot, "spread", group, 300, commit=True)
        assert len(first) == 300
        coordinator = coordinator_of(boot, group)
        committed_before = committed(boot, group, "spread")
        killed = cluster.node(coordinator)
        killed.kill9()
        survivors = ",".join(n.bootstrap for n in cluster.nodes if n is not killed)
        wait_until(lambda: coordinator not in live_brokers(survivors), SESSION_S * 4, interval=0.1,
                   what="the killed coordinator fenced")

        def moved():
            try:
                c = coordinator_of(survivors, group)
            except KafkaException:
                return None
            return c if c != coordinator else None
        new_coordinator = wait_until(moved, 20, what="a new coordinator")
        assert committed(survivors, group, "spread") == committed_before, "committed offsets lost"
        readable = sorted(p for p, leader in led.items() if leader != coordinator)
        ends = end_offsets(survivors, "spread", readable)
        want = sum(ends[p] - committed_before.get(p, 0) for p in readable)
        rest = consume(survivors, "spread", group, want, timeout=40)
        firsts = {}
        for p, o, _ in rest:
            firsts[p] = min(o, firsts.get(p, o))
        assert len(rest) >= want, f"read {len(rest)} of the {want} records after the committed offsets"
        for p in readable:
            start = committed_before.get(p, 0)
            if ends[p] > start:
                assert firsts.get(p) == start, \
                    f"partition {p}: resumed at {firsts.get(p)} instead of the committed {start}"
        print(f"group {group}: coordinator {coordinator} killed, new coordinator {new_coordinator}; "
              f"resumed at the committed offsets {committed_before}")
        killed.start()
        killed.wait_ready()
    finally:
        cluster.stop()


def end_offsets(bootstrap, topic, partitions):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "watermarks", "log_level": 2})
    try:
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions}
    finally:
        c.close()


def committed(bootstrap, group, topic):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "log_level": 2})
    try:
        parts = c.committed([TopicPartition(topic, p) for p in range(6)], timeout=20)
    except KafkaException as e:
        raise AssertionError(f"committed offsets of {group}: {e}") from e
    finally:
        c.close()
    return {tp.partition: tp.offset for tp in parts if tp.offset >= 0}
