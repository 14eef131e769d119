"""Replicated partitions under faults, checked the way Jepsen checks Kafka: a history of what an
idempotent producer was told and what consumers saw, checked against what the log holds at the
end. Three nodes (each broker and controller voter) as separate processes on loopback, every
node-to-node link (controller traffic and replication) through proxies the test cuts
(`Cluster(proxied=True)`), Kafka clients connected to every node directly.

test_acknowledged_records_survive_leader_faults: a topic of 3 partitions, replication factor 3,
min.insync.replicas 2; an idempotent acks=all producer writes unique values without pause and
records each acknowledgement (partition, offset); a consumer assigned to every partition reads
along. Meanwhile `REPLICATION_FAULTS` faults (default 5), each on the leader of a partition,
in turn: kill -9, SIGSTOP, and the leader isolated from the other nodes by the proxies but not
from clients (controller traffic and replication cut both ways). Each lasts until the other two
nodes agree that the partitions it led have new leaders (bounded: a silent broker is fenced
after the session timeout and its leaderships move), and at least 4, 5 and 7 s; then the node
is restarted on its data, resumed with SIGCONT, or healed. Between faults the cluster must
recover: every partition led, in-sync sets of 3, agreed by all nodes, and the producer
acknowledged again on every partition. During each isolation a
producer bootstrapped at the isolated leader alone writes acks=all to the partition it leads:
none of that may be acknowledged. At the end a fresh consumer reads every partition from offset
0 to the high watermark. What must hold:

- every acknowledged value is in the log exactly once, at the partition and offset its
  acknowledgement gave (none lost, none moved, none duplicated);
- no value at all appears twice (the producer is idempotent), and no value appears that was
  never sent;
- every (partition, offset) the live consumer saw holds the same value in the final read;
- the live consumer's offsets only went forward, per partition;
- a leader cut off from its followers acknowledged nothing of acks=all.

Values that were not acknowledged and are in the log anyway are allowed, counted and printed.
Printed: the faults (kind, node, partitions it led, time, when their new leaders were agreed),
acknowledgements, failover times (fault to the first acknowledged record of that partition
written in a later leader epoch, the epoch each record carries in the final read), the longest
gap between acknowledgements, and the leader and in-sync set changes a monitor saw (Metadata
of the nodes not under a fault, polled every 100 ms). The failover times include the client's
part: how soon librdkafka asks for metadata and moves (see METADATA_REFRESH_MS).

test_two_of_three_down: one partition, replication factor 3, min.insync.replicas 2; the two
followers killed with kill -9: once they have been silent for replica_lag_time_max_ms,
acks=all produce sent to the leader is refused with NOT_ENOUGH_REPLICAS before the append
(with two of three voters gone there is no controller quorum to shrink the in-sync set, so the
leader stops counting silent members itself); restarted, produce is acknowledged again and
every record acknowledged before is still at its offset, once.

test_followers_cut_off_refuses_before_the_append: the same topic, but only the replication
links between the leader and its followers cut (the controller quorum intact): the leader drops
its followers from the in-sync set after replica_lag_time_max_ms, not before, nobody is fenced,
and acks=all produce gets NOT_ENOUGH_REPLICAS — refused before the append, so none of those
values is ever in the log; healed, the followers rejoin and every acknowledged record is there.

Bounded: every wait has a deadline; session timeout 3 s, replica lag time 2.5 s; the CI
version (5 faults) runs in about two minutes.
"""

import bisect
import collections
import struct
import threading
import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from cluster_lib import Cluster
from reliability_lib import env_int, percentile, wait_until

SESSION_S = 3.0
LAG_MS = 2500
NODES = (1, 2, 3)
PARTITIONS = 3
# Each fault lasts until the partitions its node led have new leaders, and at least:
STOP_S = SESSION_S + 2.0      # a SIGSTOPped leader hung
KILLED_S = SESSION_S + 1.0    # a killed leader down before its restart
CUT_S = SESSION_S + 4.0       # an isolated leader cut off (the produce sent to it fits in it)
RECOVERY_S = 60.0             # bound on a recovery after a fault
MESSAGE_TIMEOUT_MS = 15000    # the main producer's delivery bound
MAX_IN_FLIGHT = 1500          # values sent and not yet answered, at most
KINDS = ("kill", "stop", "isolate")
# Clients try a broker that refused them again within a second (librdkafka's default backoff
# grows to 10 s, which would hide how soon a restarted leader serves again), and the main
# producer and the live consumer ask for metadata every second (librdkafka asks again at once
# only when a leader is unknown or answers NOT_LEADER_OR_FOLLOWER, not when it is down, hung
# or cut off; the default period is 5 minutes).
RECONNECT_MAX_MS = 1000
METADATA_REFRESH_MS = 1000
ENV = {"CHRONIK_CLUSTER_REPLICA_LAG_TIME_MAX_MS": str(LAG_MS)}


def admin_of(bootstrap):
    return AdminClient({"bootstrap.servers": bootstrap, "log_level": 2})


def create_replicated(bootstrap, topic, partitions):
    admin = admin_of(bootstrap)  # kept until the answer came: the future dies with its client
    f = admin.create_topics([NewTopic(topic, partitions, 3, config={"min.insync.replicas": "2"})],
                            operation_timeout=20)
    f[topic].result(30)


def view_of(node, topic):
    """{partition: (leader, leader epoch, isr)} as `node` answers; None if it does not (in time)."""
    try:
        parts = node.partitions(timeout=2)["topics"].get(topic)
    except (OSError, struct.error):
        return None
    if parts is None:
        return None
    return {p: (s["leader"], s["epoch"], tuple(s["isr"])) for p, s in parts.items()}


def agreed_view(nodes, topic):
    """The view every one of `nodes` answers with, or None when they differ or one is silent."""
    views = [view_of(n, topic) for n in nodes]
    if not views or any(v is None for v in views) or any(v != views[0] for v in views):
        return None
    return views[0]


def healthy(cluster, topic, partitions):
    """Every node running and answering the same: each partition led, with an in-sync set of
    all three replicas."""
    if not all(n.alive for n in cluster.nodes):
        return None
    v = agreed_view(cluster.nodes, topic)
    if v is None or len(v) != partitions:
        return None
    if all(leader >= 0 and isr == NODES for leader, _, isr in v.values()):
        return v
    return None


class Producing(threading.Thread):
    """An idempotent acks=all producer writing unique values without pause, value i to
    partition i % partitions. A producer that raised a fatal error is replaced by a new one;
    values are never sent twice by the test."""

    def __init__(self, bootstrap, topic, partitions, clock):
        super().__init__(daemon=True)
        self.bootstrap, self.topic, self.partitions, self.clock = bootstrap, topic, partitions, clock
        self.lock = threading.Lock()
        self.sent = {}     # value -> (partition, time)
        self.acked = {}    # value -> (partition, offset, time)
        self.failed = {}   # value -> (error name, time)
        self.errors = collections.Counter()   # delivery errors by name
        self.client_errors = collections.Counter()  # error_cb by name
        self.fatal = []
        self.producers = 0
        self.halt = threading.Event()

    def make(self):
        self.producers += 1
        return Producer({"bootstrap.servers": self.bootstrap, "acks": "all",
                         "enable.idempotence": True, "message.timeout.ms": MESSAGE_TIMEOUT_MS,
                         "request.timeout.ms": 5000, "linger.ms": 5, "retry.backoff.ms": 100,
                         "reconnect.backoff.max.ms": RECONNECT_MAX_MS,
                         "topic.metadata.refresh.interval.ms": METADATA_REFRESH_MS,
                         "log_level": 2, "error_cb": self.on_error})

    def on_error(self, err):
        with self.lock:
            self.client_errors[err.name()] += 1
            if err.fatal():
                self.fatal.append((round(self.clock(), 2), err.str()))

    def report(self, err, msg):
        v = msg.value().decode()
        t = self.clock()
        with self.lock:
            if err is None:
                self.acked[v] = (msg.partition(), msg.offset(), t)
            else:
                self.failed[v] = (err.name(), t)
                self.errors[err.name()] += 1

    def pending(self):
        with self.lock:
            return len(self.sent) - len(self.acked) - len(self.failed)

    def acked_since(self, t):
        """Partitions that got an acknowledgement after time t."""
        with self.lock:
            return {p for p, _, at in self.acked.values() if at > t}

    def run(self):
        producer = self.make()
        seq = 0
        while not self.halt.is_set():
            if self.fatal and len(self.fatal) >= self.producers:
                # A fatal error ends a producer: its messages fail, a new one goes on.
                producer.purge()
                producer.flush(5)
                producer = self.make()
            if self.pending() >= MAX_IN_FLIGHT:
                producer.poll(0.05)
                continue
            value = f"v{seq}"
            partition = seq % self.partitions
            try:
                producer.produce(self.topic, value=value.encode(), partition=partition,
                                 on_delivery=self.report)
            except BufferError:
                producer.poll(0.05)
                continue
            except KafkaException as e:
                with self.lock:
                    self.client_errors[f"produce: {e.args[0].name()}"] += 1
                producer.poll(0.05)
                continue
            with self.lock:
                self.sent[value] = (partition, self.clock())
            seq += 1
            producer.poll(0.003)
        # Every value answered, within the delivery bound.
        producer.flush(MESSAGE_TIMEOUT_MS / 1000 + 10)


class LiveReader(threading.Thread):
    """A consumer assigned to every partition from the beginning, reading along; records what
    it saw at each (partition, offset) and any offset that went backwards."""

    def __init__(self, bootstrap, topic, partitions, clock):
        super().__init__(daemon=True)
        self.bootstrap, self.topic, self.partitions, self.clock = bootstrap, topic, partitions, clock
        self.lock = threading.Lock()
        self.seen = {}          # (partition, offset) -> value
        self.conflicts = []     # (partition, offset, first value, later value)
        self.backwards = []     # (partition, previous offset, offset, time)
        self.last = {}          # partition -> last offset
        self.errors = collections.Counter()
        self.read = 0
        self.halt = threading.Event()

    def position(self):
        with self.lock:
            return dict(self.last)

    def run(self):
        c = Consumer({"bootstrap.servers": self.bootstrap, "group.id": f"{self.topic}-live",
                      "enable.auto.commit": False, "auto.offset.reset": "earliest",
                      "fetch.wait.max.ms": 100, "reconnect.backoff.max.ms": RECONNECT_MAX_MS,
                      "topic.metadata.refresh.interval.ms": METADATA_REFRESH_MS, "log_level": 2})
        c.assign([TopicPartition(self.topic, p, 0) for p in range(self.partitions)])
        try:
            while not self.halt.is_set():
                m = c.poll(0.2)
                if m is None:
                    continue
                if m.error():
                    with self.lock:
                        self.errors[m.error().name()] += 1
                    continue
                p, o, v = m.partition(), m.offset(), m.value().decode()
                with self.lock:
                    self.read += 1
                    if (p, o) in self.seen and self.seen[(p, o)] != v:
                        self.conflicts.append((p, o, self.seen[(p, o)], v))
                    self.seen[(p, o)] = v
                    if p in self.last and o <= self.last[p]:
                        self.backwards.append((p, self.last[p], o, round(self.clock(), 2)))
                    self.last[p] = o
        finally:
            c.close()


class Monitor(threading.Thread):
    """Polls the nodes that are not under a fault for the topic's leaders, epochs and in-sync
    sets, and records each change of the view they agree on."""

    def __init__(self, cluster, topic, clock):
        super().__init__(daemon=True)
        self.cluster, self.topic, self.clock = cluster, topic, clock
        self.faulted = set()
        self.changes = []   # (time, partition, leader, epoch, isr)
        self.state = {}
        self.halt = threading.Event()

    def run(self):
        while not self.halt.is_set():
            nodes = [n for n in self.cluster.nodes if n.alive and n.id not in self.faulted]
            v = agreed_view(nodes, self.topic) if nodes else None
            if v:
                t = round(self.clock(), 2)
                for p, s in sorted(v.items()):
                    if self.state.get(p) != s:
                        self.state[p] = s
                        self.changes.append((t, p) + s)
            self.halt.wait(0.1)


def read_all(bootstrap, topic, partitions, timeout=60):
    """A fresh consumer assigned to every partition from offset 0, reading up to the high
    watermark: ({(partition, offset): (value, leader epoch)}, {partition: high watermark})."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{topic}-final",
                  "enable.auto.commit": False, "auto.offset.reset": "error",
                  "reconnect.backoff.max.ms": RECONNECT_MAX_MS, "log_level": 2})
    try:
        high = {}
        for p in range(partitions):
            high[p] = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
        c.assign([TopicPartition(topic, p, 0) for p in range(partitions) if high[p] > 0])
        got, done = {}, {p for p in range(partitions) if high[p] == 0}
        deadline = time.monotonic() + timeout
        errors = collections.Counter()
        while len(done) < partitions:
            assert time.monotonic() < deadline, \
                f"final read incomplete after {timeout} s: {len(got)} records, high watermarks " \
                f"{high}, partitions done {sorted(done)}, errors {dict(errors)}"
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                errors[m.error().name()] += 1
                continue
            p, o = m.partition(), m.offset()
            if o < high[p]:
                got[(p, o)] = (m.value().decode(), m.leader_epoch())
            if o >= high[p] - 1:
                done.add(p)
        return got, high
    finally:
        c.close()


def direct_produce(node, topic, partition, count, cut_s, clock):
    """acks=all produce from a producer bootstrapped at `node` alone, every delivery answered
    well within `cut_s` (the message timeout is shorter than the cut): {"acked": [(value,
    offset, time)], "errors": {name: count}, "sent": [values], "unanswered": count}."""
    timeout_ms = int((cut_s - 2.0) * 1000)
    p = Producer({"bootstrap.servers": node.bootstrap, "acks": "all", "enable.idempotence": False,
                  "message.timeout.ms": timeout_ms, "request.timeout.ms": min(3000, timeout_ms),
                  "linger.ms": 0, "log_level": 2})
    acked, errors, sent = [], collections.Counter(), []

    def report(err, msg):
        if err is None:
            acked.append((msg.value().decode(), msg.offset(), round(clock(), 2)))
        else:
            errors[err.name()] += 1

    for i in range(count):
        v = f"direct-{node.id}-{round(clock(), 1)}-{i}"
        p.produce(topic, value=v.encode(), partition=partition, on_delivery=report)
        sent.append(v)
        p.poll(0.02)
    left = p.flush(cut_s - 1.0)
    return {"acked": acked, "errors": dict(errors), "sent": sent, "unanswered": left}


def leaders_moved(others, topic, victim, led, since, clock, timeout=SESSION_S * 3 + 10):
    """Seconds from `since` until the other nodes agree that every partition in `led` has a
    leader other than `victim` (a silent broker is fenced after the session timeout and its
    leaderships move to in-sync replicas)."""
    def moved():
        v = agreed_view(others, topic)
        return v is not None and all(v[p][0] not in (victim, -1) for p in led)
    wait_until(moved, timeout, interval=0.05,
               what=f"partitions {sorted(led)} led by a node other than {victim}")
    return clock() - since


def test_acknowledged_records_survive_leader_faults(tmp_path):
    faults = env_int("REPLICATION_FAULTS", 5)
    topic = "jepsen"
    cluster = Cluster(tmp_path, n=3, session_timeout_ms=int(SESSION_S * 1000), extra_env=ENV,
                      proxied=True)
    t0 = time.monotonic()

    def clock():
        return time.monotonic() - t0

    threads = []
    try:
        cluster.start()
        wait_until(lambda: all(n.metadata()["brokers"] == list(NODES) for n in cluster.nodes), 30,
                   what="three brokers listed by every node")
        create_replicated(cluster.bootstrap, topic, PARTITIONS)
        wait_until(lambda: healthy(cluster, topic, PARTITIONS), 30,
                   what="every partition led with three in-sync replicas")

        producer = Producing(cluster.bootstrap, topic, PARTITIONS, clock)
        reader = LiveReader(cluster.bootstrap, topic, PARTITIONS, clock)
        monitor = Monitor(cluster, topic, clock)
        threads = [producer, reader, monitor]
        for t in threads:
            t.start()
        wait_until(lambda: producer.acked_since(0) == set(range(PARTITIONS)), 30,
                   what="first acknowledgements on every partition")
        time.sleep(1.0)

        history = []   # one dict per fault
        direct = []    # produce sent straight to isolated leaders
        for i in range(faults):
            kind = KINDS[i % len(KINDS)]
            view = wait_until(lambda: healthy(cluster, topic, PARTITIONS), RECOVERY_S,
                              what="a healthy cluster before the fault")
            target = i % PARTITIONS
            victim = cluster.node(view[target][0])
            led = {p: epoch for p, (leader, epoch, _) in view.items() if leader == victim.id}
            fault = {"n": i + 1, "kind": kind, "node": victim.id, "led": led}
            monitor.faulted.add(victim.id)
            fault["at"] = clock()
            others = [n for n in cluster.nodes if n is not victim]
            if kind == "kill":
                victim.kill9()
                fault["moved"] = leaders_moved(others, topic, victim.id, led, fault["at"], clock)
                time.sleep(max(0.0, fault["at"] + KILLED_S - clock()))
                victim.start()
                victim.wait_ready(60)
            elif kind == "stop":
                victim.pause()
                fault["moved"] = leaders_moved(others, topic, victim.id, led, fault["at"], clock)
                time.sleep(max(0.0, fault["at"] + STOP_S - clock()))
                victim.resume()
            else:
                cluster.isolate(victim.id)
                out = {}
                sender = threading.Thread(target=lambda: out.update(
                    direct_produce(victim, topic, target, 20, CUT_S, clock)), daemon=True)
                sender.start()
                fault["moved"] = leaders_moved(others, topic, victim.id, led, fault["at"], clock)
                sender.join(max(0.0, fault["at"] + CUT_S - clock()))
                assert not sender.is_alive(), "the produce to the isolated leader outlived the cut"
                direct.append({"node": victim.id, "partition": target, "epoch": led[target],
                               **out})
                time.sleep(max(0.0, fault["at"] + CUT_S - clock()))
                cluster.heal_all()
            fault["ended"] = clock()
            monitor.faulted.discard(victim.id)
            wait_until(lambda: healthy(cluster, topic, PARTITIONS), RECOVERY_S, interval=0.1,
                       what=f"recovery after fault {i + 1} ({kind} of node {victim.id}): every "
                            f"partition led, in-sync sets of 3")
            fault["recovered"] = clock()
            wait_until(lambda: producer.acked_since(fault["recovered"]) == set(range(PARTITIONS)),
                       30, interval=0.1, what=f"acknowledgements on every partition after fault {i + 1}")
            fault["producing"] = clock()
            history.append(fault)
            print(f"fault {i + 1}: {kind} of node {victim.id} (leading {sorted(led)}) at "
                  f"{fault['at']:.1f} s, its partitions led by others {fault['moved']:.1f} s later, "
                  f"over at {fault['ended']:.1f} s, in-sync sets of 3 again at "
                  f"{fault['recovered']:.1f} s, every partition acknowledged at {fault['producing']:.1f} s")
            time.sleep(1.0)

        producer.halt.set()
        producer.join(MESSAGE_TIMEOUT_MS / 1000 + 20)
        assert not producer.is_alive(), "the producer did not finish within its delivery bound"
        assert producer.pending() == 0, f"{producer.pending()} values left unanswered"
        wait_until(lambda: healthy(cluster, topic, PARTITIONS), RECOVERY_S,
                   what="a healthy cluster for the final read")
        final, high = read_all(cluster.bootstrap, topic, PARTITIONS)
        wait_until(lambda: all(reader.position().get(p, -1) >= high[p] - 1
                               for p in range(PARTITIONS)), 30,
                   what=f"the live consumer at the high watermarks {high} "
                        f"(at {reader.position()})")
        for t in threads:
            t.halt.set()
        for t in threads:
            t.join(15)

        check(producer, reader, monitor, history, direct, final, high)
    finally:
        for t in threads:
            t.halt.set()
        cluster.stop()


def set_aside_new_leaders_acks(direct, final):
    """A producer bootstrapped at an isolated leader learns the other brokers from its metadata
    and may find the partition's new leader before its message timeout. What that one
    acknowledged is in the final read at the acknowledged offset, written in a later leader
    epoch than the isolated leader's (a leader stamps its own epoch on all it appends): those
    acknowledgements move from `acked` to `acked_by_new_leader`."""
    for d in direct:
        if "epoch" not in d:
            continue
        d["acked_by_new_leader"] = [
            a for a in d["acked"]
            if final.get((d["partition"], a[1]), (None,))[0] == a[0]
            and (final[(d["partition"], a[1])][1] or -1) > d["epoch"]]
        d["acked"] = [a for a in d["acked"] if a not in d["acked_by_new_leader"]]
        if d["acked_by_new_leader"]:
            print(f"isolated leader {d['node']}, partition {d['partition']} (epoch {d['epoch']}): "
                  f"acknowledged by the new leader, in a later epoch: {d['acked_by_new_leader']}")


def check(producer, reader, monitor, history, direct, final, high):
    """The checker: prints the history's figures, then asserts."""
    set_aside_new_leaders_acks(direct, final)
    by_value = collections.defaultdict(list)
    for (p, o), (v, _) in final.items():
        by_value[v].append((p, o))
    acked = producer.acked
    lost = {v: a[:2] for v, a in acked.items() if v not in by_value}
    moved = {v: (a[:2], by_value[v]) for v, a in acked.items()
             if v in by_value and by_value[v] != [a[:2]]}
    duplicated = {v: at for v, at in by_value.items() if len(at) > 1}
    direct_values = {v for d in direct for v in d["sent"]}
    unknown = sorted(v for v in by_value if v not in producer.sent and v not in direct_values)
    unacked_present = sorted(v for v in by_value if v in producer.sent and v not in acked)
    direct_present = sorted(v for v in by_value if v in direct_values)
    live_mismatch = [(p, o, v, final.get((p, o), (None,))[0])
                     for (p, o), v in sorted(reader.seen.items()) if final.get((p, o), (None,))[0] != v]
    gaps = {p: high[p] - sum(1 for (q, _) in final if q == p) for p in high}

    # Failover: from the fault to the first acknowledged record of a partition the node led,
    # written in a later leader epoch (the epoch each record carries in the final read).
    failovers = []
    for f in history:
        f["failover_s"] = {}
        for p, epoch in f["led"].items():
            first = min((a[2] for v, a in acked.items()
                         if a[0] == p and a[2] > f["at"] and (final.get(a[:2], (None, None))[1] or -1) > epoch),
                        default=None)
            if first is not None:
                f["failover_s"][p] = round(first - f["at"], 2)
                failovers.append(first - f["at"])
    # Unavailability: per partition the node led, the longest time without an acknowledgement
    # from the last one before the fault to the first one after the cluster recovered; and the
    # last acknowledgement of a record written in the old leader epoch (a response in flight at
    # the fault, or a retry that the new leader recognised as a duplicate of a batch the old one
    # had replicated: it answers with the offset the record already has).
    ack_times = collections.defaultdict(list)
    for v, (p, o, at) in acked.items():
        ack_times[p].append((at, (final.get((p, o), (None, None))[1] or -1)))
    for times in ack_times.values():
        times.sort()
    for f in history:
        f["gap_s"], f["old_epoch_late_s"] = {}, {}
        for p, epoch in f["led"].items():
            times = [at for at, _ in ack_times[p]]
            i = bisect.bisect_right(times, f["at"])
            j = bisect.bisect_right(times, f["producing"])
            window = times[max(0, i - 1):j + 1]
            if len(window) > 1:
                f["gap_s"][p] = round(max(b - a for a, b in zip(window, window[1:])), 2)
            old = [at for at, e in ack_times[p][i:j] if e <= epoch]
            if old:
                f["old_epoch_late_s"][p] = round(max(old) - f["at"], 2)
    isr_changes, last = [], {}
    shrinks = expands = elections = 0
    for c in monitor.changes:
        _, p, leader, epoch, isr = c
        if p in last:
            isr_changes.append(c)
            shrinks += len(isr) < len(last[p][2])
            expands += len(isr) > len(last[p][2])
            elections += epoch != last[p][1]
        last[p] = (leader, epoch, isr)

    print(f"history: {len(producer.sent)} values sent, {len(acked)} acknowledged, "
          f"{len(producer.failed)} failed ({dict(producer.errors)}), {producer.producers} producer(s), "
          f"client errors {dict(producer.client_errors)}")
    for f in history:
        print(f"  fault {f['n']}: {f['kind']} node {f['node']} at {f['at']:.1f} s (led partitions "
              f"{f['led']} by epoch), new leaders after {f['moved']:.1f} s, over {f['ended']:.1f} s, "
              f"recovered {f['recovered']:.1f} s; first acknowledged write in a new epoch after "
              f"{f['failover_s']} s, longest gap between acknowledgements {f['gap_s']} s, last "
              f"acknowledgement of a write in the old epoch {f['old_epoch_late_s']} s after the fault")
    for d in direct:
        print(f"  isolated leader {d['node']}, partition {d['partition']}: {len(d['sent'])} acks=all "
              f"values sent to it alone, acknowledged {len(d['acked'])}, errors {d['errors']}, "
              f"unanswered at the heal {d['unanswered']}")
    print(f"final read: high watermarks {high}, {len(final)} records, offsets missing below the "
          f"high watermark {gaps}; live consumer read {reader.read} ({len(reader.seen)} distinct "
          f"offsets), errors {dict(reader.errors)}")
    print(f"lost {len(lost)}, moved {len(moved)}, duplicated {len(duplicated)}, unknown {len(unknown)}, "
          f"live/final mismatches {len(live_mismatch)}, live conflicts {len(reader.conflicts)}, "
          f"live offsets backwards {len(reader.backwards)}; unacknowledged values present "
          f"{len(unacked_present)} (allowed), values sent to isolated leaders present {len(direct_present)}")
    if failovers:
        print(f"failover (fault -> first acknowledged write in a new leader epoch): median "
              f"{percentile(failovers, 50):.2f} s, worst {max(failovers):.2f} s over {len(failovers)} partitions")
    print(f"leader/in-sync changes seen by the monitor: {elections} new leader epochs, {shrinks} "
          f"in-sync sets shrunk, {expands} grown: "
          + "; ".join(f"{t:.1f}s p{p} leader {leader} epoch {e} isr {list(isr)}"
                      for t, p, leader, e, isr in isr_changes))

    assert not lost, f"acknowledged values lost: {dict(list(lost.items())[:10])}"
    assert not moved, f"acknowledged values elsewhere than acknowledged: {dict(list(moved.items())[:10])}"
    assert not duplicated, f"values in the log more than once: {dict(list(duplicated.items())[:10])}"
    assert not unknown, f"values nobody sent: {unknown[:10]}"
    assert not live_mismatch, f"(partition, offset, live value, final value): {live_mismatch[:10]}"
    assert not reader.conflicts, f"live consumer saw two values at one offset: {reader.conflicts[:10]}"
    assert not reader.backwards, f"live consumer went backwards: {reader.backwards[:10]}"
    for d in direct:
        assert not d["acked"], (f"isolated leader {d['node']} acknowledged acks=all writes to "
                                f"partition {d['partition']}: {d['acked'][:10]}")
        assert d["unanswered"] == 0, f"writes to isolated leader {d['node']} still unanswered at the heal"
    assert len(acked) > 0 and len(history) > 0


def test_two_of_three_down(tmp_path):
    topic = "quorum-loss"
    cluster = Cluster(tmp_path, n=3, session_timeout_ms=int(SESSION_S * 1000), extra_env=ENV)
    try:
        cluster.start()
        wait_until(lambda: all(n.metadata()["brokers"] == list(NODES) for n in cluster.nodes), 30,
                   what="three brokers listed by every node")
        create_replicated(cluster.bootstrap, topic, 1)
        view = wait_until(lambda: healthy(cluster, topic, 1), 30, what="three in-sync replicas")
        leader = cluster.node(view[0][0])
        followers = [n for n in cluster.nodes if n is not leader]

        before = produce_all(cluster.bootstrap, topic, [f"before-{i}" for i in range(200)])

        for n in followers:
            n.kill9()
        down_at = time.monotonic()
        # Once its followers have been silent for replica_lag_time_max_ms the leader no longer
        # counts them as in sync, although no controller quorum is left to drop them.
        time.sleep(LAG_MS / 1000 + 1.0)
        # acks=all to the leader alone, which has neither its followers nor a controller quorum.
        p = Producer({"bootstrap.servers": leader.bootstrap, "acks": "all", "enable.idempotence": False,
                      "message.timeout.ms": 8000, "request.timeout.ms": 3000, "retries": 0,
                      "log_level": 2})
        outcome = {"acked": [], "errors": collections.Counter()}

        def report(err, msg):
            if err is None:
                outcome["acked"].append((msg.value().decode(), msg.offset()))
            else:
                outcome["errors"][err.name()] += 1
        during = [f"during-{i}" for i in range(30)]
        for v in during:
            p.produce(topic, value=v.encode(), partition=0, on_delivery=report)
            p.poll(0.1)
        left = p.flush(15)
        answered_after = time.monotonic() - down_at
        print(f"followers {[n.id for n in followers]} killed: {len(during)} acks=all values sent to "
              f"leader {leader.id}: acknowledged {len(outcome['acked'])}, errors "
              f"{dict(outcome['errors'])}, unanswered {left}, all answered after {answered_after:.1f} s; "
              f"leader's view {view_of(leader, topic)}")
        assert not outcome["acked"], f"acknowledged with two of three replicas down: {outcome['acked'][:10]}"
        assert left == 0, "writes left unanswered"
        assert set(outcome["errors"]) == {"NOT_ENOUGH_REPLICAS"}, \
            f"expected NOT_ENOUGH_REPLICAS (refused before the append), got {dict(outcome['errors'])}"

        for n in followers:
            n.start()
        for n in followers:
            n.wait_ready(60)
        restarted = time.monotonic()
        wait_until(lambda: healthy(cluster, topic, 1), RECOVERY_S, interval=0.1,
                   what="three in-sync replicas after the restarts")
        recovered_after = time.monotonic() - restarted
        after = produce_all(cluster.bootstrap, topic, [f"after-{i}" for i in range(100)])

        final, high = read_all(cluster.bootstrap, topic, 1)
        values = {v: (p, o) for (p, o), (v, _) in final.items()}
        lost = {v: at for v, at in {**before, **after}.items() if values.get(v) != at}
        during_present = [v for v in during if v in values]
        print(f"restarted: three in-sync replicas after {recovered_after:.1f} s; {len(after)} values "
              f"acknowledged again; final read to high watermark {high[0]}: {len(final)} records, "
              f"acknowledged values not at their offsets {len(lost)}, unacknowledged values from the "
              f"outage present {len(during_present)} (allowed)")
        assert not lost, f"acknowledged values missing or moved: {dict(list(lost.items())[:10])}"
        counts = collections.Counter(v for v, _ in final.values())
        assert all(c == 1 for v, c in counts.items() if v in before or v in after), \
            "an acknowledged value appears twice"
    finally:
        cluster.stop()


def produce_all(bootstrap, topic, values, timeout=30):
    """acks=all, idempotent; every value must be acknowledged: {value: (partition, offset)}."""
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                  "message.timeout.ms": timeout * 1000, "reconnect.backoff.max.ms": RECONNECT_MAX_MS,
                  "log_level": 2})
    acked, failed = {}, []

    def report(err, msg):
        if err is None:
            acked[msg.value().decode()] = (msg.partition(), msg.offset())
        else:
            failed.append((msg.value().decode(), err.name()))
    for v in values:
        p.produce(topic, value=v.encode(), partition=0, on_delivery=report)
        p.poll(0)
    assert p.flush(timeout + 10) == 0, "values left unanswered"
    assert not failed, f"produce failed: {failed[:5]}"
    return acked


def test_followers_cut_off_refuses_before_the_append(tmp_path):
    topic = "isr-shrink"
    cluster = Cluster(tmp_path, n=3, session_timeout_ms=int(SESSION_S * 1000), extra_env=ENV,
                      proxied=True)
    try:
        cluster.start()
        wait_until(lambda: all(n.metadata()["brokers"] == list(NODES) for n in cluster.nodes), 30,
                   what="three brokers listed by every node")
        create_replicated(cluster.bootstrap, topic, 1)
        view = wait_until(lambda: healthy(cluster, topic, 1), 30, what="three in-sync replicas")
        leader = cluster.node(view[0][0])
        followers = [n for n in cluster.nodes if n is not leader]
        before = produce_all(cluster.bootstrap, topic, [f"before-{i}" for i in range(100)])

        # Replication only: every node still reaches the controller quorum, so nobody is fenced,
        # and the leader's request to drop its lagging followers goes through.
        for f in followers:
            cluster.cut(leader.id, f.id, kinds=("replication",))
        cut_at = time.monotonic()
        wait_until(lambda: all(view_of(n, topic) and view_of(n, topic)[0][2] == (leader.id,)
                               for n in cluster.nodes), LAG_MS / 1000 * 2 + 10, interval=0.1,
                   what=f"the in-sync set shrunk to the leader {leader.id}")
        shrunk_after = time.monotonic() - cut_at
        assert shrunk_after >= LAG_MS / 1000 - 0.6, \
            f"followers dropped after {shrunk_after:.1f} s, before replica_lag_time_max_ms"
        assert sorted(n.metadata()["brokers"] for n in cluster.nodes) == [list(NODES)] * 3, \
            "a broker was fenced although every node reaches the controller quorum"

        p = Producer({"bootstrap.servers": leader.bootstrap, "acks": "all", "enable.idempotence": False,
                      "message.timeout.ms": 8000, "request.timeout.ms": 3000, "retries": 0,
                      "log_level": 2})
        acked, errors = [], collections.Counter()

        def report(err, msg):
            if err is None:
                acked.append((msg.value().decode(), msg.offset()))
            else:
                errors[err.name()] += 1
        refused = [f"refused-{i}" for i in range(20)]
        for v in refused:
            p.produce(topic, value=v.encode(), partition=0, on_delivery=report)
            p.poll(0.05)
        left = p.flush(15)
        print(f"replication from leader {leader.id} cut: in-sync set [{leader.id}] after "
              f"{shrunk_after:.1f} s (replica_lag_time_max_ms {LAG_MS}); {len(refused)} acks=all "
              f"values: acknowledged {len(acked)}, errors {dict(errors)}, unanswered {left}")
        assert not acked, f"acknowledged below min.insync.replicas: {acked[:10]}"
        assert left == 0
        assert set(errors) == {"NOT_ENOUGH_REPLICAS"}, \
            f"expected NOT_ENOUGH_REPLICAS (refused before the append), got {dict(errors)}"

        for f in followers:
            cluster.heal(leader.id, f.id, kinds=("replication",))
        healed_at = time.monotonic()
        wait_until(lambda: healthy(cluster, topic, 1), RECOVERY_S, interval=0.1,
                   what="the followers back in the in-sync set")
        rejoined_after = time.monotonic() - healed_at
        after = produce_all(cluster.bootstrap, topic, [f"after-{i}" for i in range(100)])
        final, high = read_all(cluster.bootstrap, topic, 1)
        values = collections.Counter(v for v, _ in final.values())
        at = {v: (p_, o) for (p_, o), (v, _) in final.items()}
        wrong = {v: a for v, a in {**before, **after}.items() if at.get(v) != a or values[v] != 1}
        appended = [v for v in refused if v in values]
        print(f"healed: followers in sync after {rejoined_after:.1f} s; final read to high "
              f"watermark {high[0]}: {len(final)} records, acknowledged values wrong {len(wrong)}, "
              f"refused values in the log {len(appended)}")
        assert not wrong, f"acknowledged values missing, moved or repeated: {dict(list(wrong.items())[:10])}"
        assert not appended, f"values refused with NOT_ENOUGH_REPLICAS are in the log: {appended[:10]}"
    finally:
        cluster.stop()
