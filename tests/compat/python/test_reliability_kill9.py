"""Reliability: the kill -9 loop under a mixed load.

Three topics on one chronik broker whose remote tier is LocalStack's S3:
  tiered  remote.storage.enable=true, segment.bytes=65536, local.retention.bytes=1 (sealed
          segments move to S3 and leave the local disk within a second or so)
  search  search.enabled=true
  plain   nothing special
One idempotent acks=all producer per topic (confluent-kafka), writing at a fixed rate, and a
consumer-group member on the plain and tiered topics that commits its position synchronously
every few hundred milliseconds. The producers and the member live across the crashes, like real
clients: what they had in flight at a kill is retried against the restarted broker.

Each cycle runs the load for a random 2-5 s, kills the broker with SIGKILL, restarts it on the
same data directory, lets the producers deliver what they still held, and then checks:
  * every acknowledged record (topic, partition, offset, key, value) is read back at its offset,
    the log is dense from offset 0, no offset ever shows two different records across reads, and
    no record of this test appears at two offsets (duplicates);
  * every committed offset the broker acknowledged is there (OffsetFetch from a fresh client) and
    no committed offset moves backwards between checks;
  * every record of the searchable topic is found by the search API once the indexer says it is
    searchable (bounded wait), once each, with its value; a sample is found by its unique token.

RELIABILITY_CYCLES (default 5; the long run is 50), RELIABILITY_RATE (records/s per producer,
default 300) and RELIABILITY_VERIFY_EVERY (full verification every N cycles, default 1) bound
the run. Prints the figures (cycles, acknowledged, lost, duplicates, commits checked).
"""
import os
import random
import tempfile
import threading
import time
from collections import Counter, defaultdict

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from reliability_lib import (RUN_ID, Broker, TierOffsets, env_float, env_int, http_error_text,
                             wait_until)

pytestmark = [pytest.mark.chronik_only, pytest.mark.tiered]

TOPICS = {  # label -> (partitions, topic configs)
    "tiered": (2, {"remote.storage.enable": "true", "segment.bytes": "65536", "local.retention.bytes": "1"}),
    "search": (2, {"search.enabled": "true"}),
    "plain": (3, {}),
}
GROUP_TOPICS = ("plain", "tiered")
WORDS = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike".split()


class Violations:
    def __init__(self):
        self.items = []
        self.lock = threading.Lock()

    def add(self, text):
        with self.lock:
            if len(self.items) < 200:
                self.items.append(text)
            print(f"VIOLATION: {text}")


class Load:
    """The producers and the group member, running in two threads across broker restarts."""

    def __init__(self, broker, names, rate, violations):
        self.broker = broker
        self.names = names  # label -> topic name
        self.rate = rate
        self.violations = violations
        self.running = threading.Event()  # set: produce and consume; clear: idle
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        # topic -> partition -> offset -> (key, value): what the broker acknowledged
        self.acked = {name: defaultdict(dict) for name in names.values()}
        self.acked_values = {}  # value -> (topic, partition, offset)
        self.sent = 0
        self.failed = Counter()
        self.producer_errors = Counter()
        self.fatal_restarts = 0
        self.commit_acked = {}  # (topic, partition) -> highest offset a successful commit stored
        self.commits_ok = 0
        self.commits_failed = 0
        self.consumed = 0
        self.group = f"rel-kill9-group-{RUN_ID}"
        self.producers = {label: self._new_producer() for label in names}
        self.gen = 0
        self.seq = 0
        self.threads = [threading.Thread(target=self._produce_loop, name="rel-produce", daemon=True),
                        threading.Thread(target=self._consume_loop, name="rel-consume", daemon=True)]

    def _new_producer(self):
        return Producer({
            "bootstrap.servers": self.broker.bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 5,
            "message.timeout.ms": 120000,
            "queue.buffering.max.messages": 200000,
            # librdkafka backs off reconnects up to 10 s; the broker is back within a second
            "reconnect.backoff.max.ms": 1000,
            "error_cb": self._on_error,
            "log_level": 2,  # refused connections while the broker is down are expected
        })

    def _on_error(self, err):
        self.producer_errors[err.name()] += 1
        if err.fatal():
            self.violations.add(f"producer fatal error: {err}")

    def _on_delivery(self, label, err, msg):
        if err is not None:
            with self.lock:
                self.failed[err.name()] += 1
            return
        topic, p, off, key, value = msg.topic(), msg.partition(), msg.offset(), msg.key(), msg.value()
        with self.lock:
            prev = self.acked[topic][p].get(off)
            if prev is not None and prev != (key, value):
                self.violations.add(f"{topic}/{p}@{off} acknowledged for two records: {prev[0]!r} and {key!r}")
            again = self.acked_values.get(value)
            if again is not None and again != (topic, p, off):
                self.violations.add(f"record {key!r} acknowledged at two offsets: {again} and {(topic, p, off)}")
            self.acked[topic][p][off] = (key, value)
            self.acked_values[value] = (topic, p, off)

    def _record(self, label, rng):
        self.seq += 1
        token = f"u{self.gen}x{self.seq}x{rng.getrandbits(40):010x}"
        words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 40)))
        value = f"rel {label} g{self.gen} s{self.seq} {token} {words}".encode()
        return f"{label}-{self.gen}-{self.seq}".encode(), value

    def _produce_loop(self):
        rng = random.Random()
        interval = 1.0 / self.rate
        next_at = time.monotonic()
        while not self.stopping.is_set():
            if not self.running.is_set():
                for p in self.producers.values():
                    p.poll(0)
                self.running.wait(0.05)
                next_at = time.monotonic()
                continue
            for label, producer in self.producers.items():
                key, value = self._record(label, rng)
                parts = TOPICS[label][0]
                try:
                    # seq moves by one per topic: spread each topic's records over its partitions
                    partition = (self.seq // len(self.producers)) % parts
                    producer.produce(self.names[label], key=key, value=value, partition=partition,
                                     on_delivery=lambda err, msg, label=label: self._on_delivery(label, err, msg))
                    self.sent += 1
                except BufferError:
                    pass
                producer.poll(0)
            next_at += interval
            pause = next_at - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            elif pause < -1:
                next_at = time.monotonic()

    def _consume_loop(self):
        consumer = Consumer({
            "bootstrap.servers": self.broker.bootstrap, "group.id": self.group,
            # "error", not "earliest": a member whose position is reset (a committed offset it
            # did not get, an offset the broker calls out of range) would silently start again
            # from 0 and commit lower offsets; here that is reported with the offset at fault.
            # The group starts with offset 0 committed for every partition, so a reset is never
            # expected.
            "enable.auto.commit": False, "auto.offset.reset": "error",
            "session.timeout.ms": 10000, "heartbeat.interval.ms": 1000, "log_level": 2,
            "reconnect.backoff.max.ms": 1000,
        })
        consumer.commit(offsets=[TopicPartition(self.names[label], p, 0) for label in GROUP_TOPICS
                                 for p in range(TOPICS[label][0])], asynchronous=False)
        consumer.subscribe([self.names[label] for label in GROUP_TOPICS])
        positions = {}
        last_commit = time.monotonic()
        try:
            while not self.stopping.is_set():
                if not self.running.is_set():
                    self.running.wait(0.1)
                    continue
                msg = consumer.poll(0.2)
                if msg is not None and msg.error() is not None:
                    err = msg.error()
                    if err.code() == KafkaError._AUTO_OFFSET_RESET:
                        self.violations.add(f"group member: {msg.topic()}/{msg.partition()}: {err.str()}")
                    continue
                if msg is not None:
                    self.consumed += 1
                    tp = (msg.topic(), msg.partition())
                    with self.lock:
                        acked = self.acked[msg.topic()][msg.partition()].get(msg.offset())
                    if acked is not None and acked != (msg.key(), msg.value()):
                        self.violations.add(f"group member read {tp}@{msg.offset()} = {msg.key()!r}, "
                                            f"acknowledged {acked[0]!r}")
                    positions[tp] = msg.offset() + 1
                if positions and time.monotonic() - last_commit > 0.3:
                    last_commit = time.monotonic()
                    offsets = [TopicPartition(t, p, o) for (t, p), o in positions.items()]
                    try:
                        result = consumer.commit(offsets=offsets, asynchronous=False)
                    except KafkaException:
                        self.commits_failed += 1
                        continue
                    for tp in result or []:
                        if tp.error is None and tp.offset >= 0:
                            key = (tp.topic, tp.partition)
                            with self.lock:
                                self.commit_acked[key] = max(self.commit_acked.get(key, -1), tp.offset)
                            self.commits_ok += 1
                        else:
                            self.commits_failed += 1
                    positions.clear()
        finally:
            consumer.close()

    def start(self):
        for t in self.threads:
            t.start()

    def flush(self, timeout):
        """Waits (bounded) until every producer has no message left to deliver."""
        deadline = time.monotonic() + timeout
        for label in list(self.producers):
            left = self.producers[label].flush(max(0.1, deadline - time.monotonic()))
            if left:
                self.violations.add(f"producer {label}: {left} records undelivered {timeout}s after restart")

    def stop(self):
        self.running.clear()
        self.stopping.set()
        for t in self.threads:
            t.join(30)
        for p in self.producers.values():
            p.purge(in_queue=True, in_flight=True)
            p.flush(5)



def read_partition(bootstrap, topic, partition, end, timeout=120):
    consumer = Consumer({
        "bootstrap.servers": bootstrap, "group.id": "rel-unused", "enable.auto.commit": False,
        "enable.auto.offset.store": False, "auto.offset.reset": "error", "check.crcs": True,
        "fetch.wait.max.ms": 100, "log_level": 2,
    })
    try:
        got = []
        if end == 0:
            return got
        consumer.assign([TopicPartition(topic, partition, 0)])
        deadline = time.monotonic() + timeout
        while (not got or got[-1][0] < end - 1) and time.monotonic() < deadline:
            msgs = consumer.consume(1000, 0.5)
            for msg in msgs:
                if msg.error() is not None:
                    raise AssertionError(f"{topic}/{partition}: {msg.error()}")
                got.append((msg.offset(), msg.key(), msg.value()))
        return got
    finally:
        consumer.close()


class Verifier:
    def __init__(self, broker, names, load, violations):
        self.broker = broker
        self.names = names
        self.load = load
        self.violations = violations
        self.seen = {}  # (topic, partition, offset) -> (key, value), across every read
        self.lost = set()
        self.duplicates = set()
        self.commits_checked = 0
        self.committed_history = {}  # (topic, partition) -> last committed offset seen
        self.search_checked = 0
        self.search_wait_s = []
        self.records_read = 0

    def check_log(self, bootstrap):
        admin = Consumer({"bootstrap.servers": bootstrap, "group.id": "rel-unused", "log_level": 2})
        try:
            for label, name in self.names.items():
                for p in range(TOPICS[label][0]):
                    low, high = admin.get_watermark_offsets(TopicPartition(name, p), timeout=20, cached=False)
                    with self.load.lock:
                        acked = dict(self.load.acked[name][p])
                    if low != 0:
                        self.violations.add(f"{name}/{p}: log start {low}, expected 0")
                    if acked and high <= max(acked):
                        self.violations.add(f"{name}/{p}: high watermark {high} <= acknowledged offset {max(acked)}")
                    t_read = time.monotonic()
                    records = read_partition(bootstrap, name, p, high)
                    took = time.monotonic() - t_read
                    if took > 10:
                        print(f"  slow read: {name}/{p} {len(records)} records up to {high} in {took:.1f}s")
                    self.records_read += len(records)
                    offsets = [o for o, _, _ in records]
                    if offsets != list(range(len(offsets))):
                        self.violations.add(f"{name}/{p}: offsets not dense from 0 (got {len(offsets)} records, "
                                            f"first gap near {next((i for i, o in enumerate(offsets) if o != i), None)})")
                    if len(records) < high:
                        self.violations.add(f"{name}/{p}: read {len(records)} of {high} records")
                    values_here = {}
                    for off, key, value in records:
                        k = (name, p, off)
                        prev = self.seen.get(k)
                        if prev is not None and prev != (key, value):
                            self.violations.add(f"{name}/{p}@{off} changed between reads: {prev[0]!r} -> {key!r}")
                        self.seen[k] = (key, value)
                        if value in values_here:
                            self.duplicates.add((name, p, value))
                            self.violations.add(f"{name}/{p}: record {key!r} at offsets {values_here[value]} and {off}")
                        values_here[value] = off
                    by_offset = {o: (k, v) for o, k, v in records}
                    for off, rec in acked.items():
                        got = by_offset.get(off)
                        if got != rec:
                            self.lost.add((name, p, off))
                            if len(self.lost) <= 20:
                                self.violations.add(f"{name}/{p}@{off}: acknowledged {rec[0]!r}, read "
                                                    f"{None if got is None else got[0]!r}")
        finally:
            admin.close()

    def check_commits(self, bootstrap):
        with self.load.lock:
            acked = dict(self.load.commit_acked)
        if not acked:
            return
        probe = Consumer({"bootstrap.servers": bootstrap, "group.id": self.load.group, "log_level": 2})
        try:
            got = probe.committed([TopicPartition(t, p) for t, p in acked], timeout=30)
        finally:
            probe.close()
        for tp in got:
            key = (tp.topic, tp.partition)
            self.commits_checked += 1
            if tp.offset < acked[key]:
                self.violations.add(f"committed offset of {key} is {tp.offset}, a commit of {acked[key]} was acknowledged")
            prev = self.committed_history.get(key, -1)
            if tp.offset < prev:
                self.violations.add(f"committed offset of {key} went back from {prev} to {tp.offset}")
            self.committed_history[key] = max(prev, tp.offset)

    def check_search(self, timeout):
        name = self.names["search"]
        parts = TOPICS["search"][0]
        with self.load.lock:
            acked = {p: dict(self.load.acked[name][p]) for p in range(parts)}
        log_end = {p: 1 + max((o for (t, pp, o) in self.seen if t == name and pp == p), default=-1)
                   for p in range(parts)}
        started = time.monotonic()

        def searchable():
            try:
                status = self.broker.get_json(f"/topics/{name}/_search/status")
            except Exception:  # noqa: BLE001 - retried until the deadline
                return None
            by_p = {s["partition"]: s["searchable_offset"] for s in status.get("partitions", [])}
            return all(by_p.get(p, -1) >= log_end[p] for p in range(parts)) and by_p

        wait_until(searchable, timeout=timeout, interval=0.25, what=f"{name} searchable up to {log_end}")
        self.search_wait_s.append(time.monotonic() - started)
        for p in range(parts):
            hits = {}
            after = None
            for _ in range(1000):  # pages of 5000; bounded
                body = {"query": {"match_all": {}}, "size": 5000, "partitions": [p],
                        "sort": [{"offset": "asc"}]}
                if after is not None:
                    body["search_after"] = after
                try:
                    page = self.broker.post_json(f"/topics/{name}/_search", body)
                except Exception as exc:  # noqa: BLE001 - a failed query is a finding
                    self.violations.add(f"search {name}/{p} failed: {http_error_text(exc)}")
                    return
                for h in page["hits"]:
                    if h["offset"] in hits:
                        self.violations.add(f"search {name}/{p}: offset {h['offset']} found twice")
                    hits[h["offset"]] = h.get("value")
                if len(page["hits"]) < 5000:
                    break
                after = page["hits"][-1]["sort"]
            missing = [o for o in range(log_end[p]) if o not in hits]
            if missing:
                self.violations.add(f"search {name}/{p}: {len(missing)} of {log_end[p]} offsets not found, "
                                    f"first {missing[:5]}")
            for off, (_, value) in acked[p].items():
                self.search_checked += 1
                if off in hits and hits[off] != value.decode():
                    self.violations.add(f"search {name}/{p}@{off}: value differs from the acknowledged one")
        # A sample found by its unique token, once.
        sample = random.sample([(p, o, v) for p in acked for o, (_, v) in acked[p].items()],
                               k=min(10, sum(len(a) for a in acked.values())))
        for p, off, value in sample:
            token = value.split()[4].decode()
            try:
                res = self.broker.post_json(f"/topics/{name}/_search",
                                            {"query": {"match": {"value": token}}, "size": 5})
            except Exception as exc:  # noqa: BLE001
                self.violations.add(f"search for {token} failed: {http_error_text(exc)}")
                continue
            found = [(h["partition"], h["offset"]) for h in res["hits"]]
            if found != [(p, off)]:
                self.violations.add(f"search for {token}: {found}, expected [({p}, {off})]")


@pytest.fixture
def s3_endpoint():
    endpoint = os.environ.get("REMOTE_TIER_ENDPOINT")
    if not os.environ.get("CHRONIK_BIN_PATH") or not endpoint:
        pytest.skip("needs CHRONIK_BIN_PATH and REMOTE_TIER_ENDPOINT (tests/compat/reliability.sh sets both)")
    return endpoint


def test_kill9_loop_under_mixed_load(s3_endpoint):
    cycles = env_int("RELIABILITY_CYCLES", 5)
    rate = env_float("RELIABILITY_RATE", 300.0)
    verify_every = max(1, env_int("RELIABILITY_VERIFY_EVERY", 1))
    rng = random.Random()
    violations = Violations()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="chronik-rel-kill9-") as tmp:
        broker = Broker(tmp, s3_endpoint, f"rel-kill9-{RUN_ID}")
        print(f"\nbroker {broker.bootstrap}, admin {broker.http}, tier {broker.tier_url}, work dir {tmp}")
        broker.start()
        names = {label: f"rel-kill9-{label}-{RUN_ID}" for label in TOPICS}
        admin = AdminClient({"bootstrap.servers": broker.bootstrap, "log_level": 2})
        futures = admin.create_topics([NewTopic(names[label], num_partitions=n, replication_factor=1, config=cfg)
                                       for label, (n, cfg) in TOPICS.items()])
        for f in futures.values():
            f.result(20)
        del admin
        load = Load(broker, names, rate, violations)
        verifier = Verifier(broker, names, load, violations)
        load.start()
        restart_s, flush_s, verify_s = [], [], []
        try:
            for cycle in range(1, cycles + 1):
                run_s = rng.uniform(2.0, 5.0)
                load.running.set()
                time.sleep(run_s)
                broker.kill9()
                load.running.clear()
                acked_before = sum(len(p) for t in load.acked.values() for p in t.values())
                restart_s.append(broker.start())
                t_flush = time.monotonic()
                load.flush(90)
                flush_s.append(time.monotonic() - t_flush)
                t0 = time.monotonic()
                full = cycle % verify_every == 0 or cycle == cycles
                if full:
                    verifier.check_log(broker.bootstrap)
                t1 = time.monotonic()
                verifier.check_commits(broker.bootstrap)
                t2 = time.monotonic()
                if full:
                    verifier.check_search(timeout=60)
                print(f"  checks: log {t1 - t0:.1f}s, commits {t2 - t1:.1f}s, search {time.monotonic() - t2:.1f}s")
                verify_s.append(time.monotonic() - t0)
                acked_now = sum(len(p) for t in load.acked.values() for p in t.values())
                print(f"cycle {cycle}/{cycles}: load {run_s:.1f}s, restart {restart_s[-1]:.1f}s, "
                      f"producers drained in {flush_s[-1]:.1f}s, "
                      f"acked {acked_before} at the kill, {acked_now} after the restart, "
                      f"checked in {verify_s[-1]:.1f}s, violations {len(violations.items)}")
                if len(violations.items) >= 50:
                    break
            load.stop()
            tiers = TierOffsets(broker.bootstrap)
            try:
                tiered = [tiers.get(names["tiered"], p) for p in range(TOPICS["tiered"][0])]
            finally:
                tiers.close()
        finally:
            load.stop()
            broker.stop()
        acked_total = sum(len(p) for t in load.acked.values() for p in t.values())
        print("\n=== kill -9 loop")
        print(f"cycles: {cycle}; elapsed {time.monotonic() - started:.0f}s; restart to metadata "
              f"max {max(restart_s):.1f}s; producers drained after a restart in max {max(flush_s):.1f}s")
        print(f"records sent {load.sent}, acknowledged {acked_total}, lost {len(verifier.lost)}, "
              f"duplicates {len(verifier.duplicates)}, failed deliveries {dict(load.failed)}")
        print(f"records read back in checks {verifier.records_read}; search: {verifier.search_checked} "
              f"acknowledged records checked, wait for searchable max "
              f"{max(verifier.search_wait_s, default=0):.1f}s")
        print(f"group: {load.consumed} consumed, commits ok {load.commits_ok}, failed {load.commits_failed}, "
              f"committed offsets checked {verifier.commits_checked}")
        print(f"tiered topic (earliest-local, latest-tiered) per partition: {tiered}")
        print(f"producer errors seen: {dict(load.producer_errors)}")
        print(f"violations: {len(violations.items)}")
        if violations.items:
            print("broker log tail:")
            print(broker.log_path.read_text(errors='replace')[-3000:])
    assert not violations.items, "\n".join(violations.items[:30])
    assert acked_total > 0
    assert all(tiered_local > 0 for tiered_local, _ in tiered), f"nothing moved to S3: {tiered}"
    assert verifier.commits_checked > 0
