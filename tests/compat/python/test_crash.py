"""Crash tests: kill -9 the broker while an acks=all producer writes, restart it on the same data
directory, and check that every acknowledged record is still there at its acknowledged offset;
and kill -9 it right after consumer-group offset commits, then check that the commits survived
and that a restarted group member resumes right after them.

The broker under test is started by this test itself:
  * CHRONIK_BIN_PATH=/path/to/chronik   -> `chronik serve --listen 127.0.0.1:PORT --data-dir DIR`
  * CRASH_TARGET=kafka                  -> the reference Apache Kafka (tests/kafka/kafka.sh), which
                                           validates the test itself
Otherwise the test is skipped. CRASH_CYCLES (default 3) and CRASH_MAX_WRITE_S (default 6, at most
10) bound the run.
"""
import os
import random
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from ports import free_port

HERE = Path(__file__).resolve().parent
KAFKA_SH = HERE.parent.parent / "kafka" / "kafka.sh"
PARTITIONS = 3



def port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class Broker:
    """Starts, kills (-9) and restarts one broker process on a persistent data directory."""

    def __init__(self, workdir):
        self.workdir = Path(workdir)
        self.kind = "chronik" if os.environ.get("CHRONIK_BIN_PATH") else "kafka"
        self.port = int(os.environ.get("CRASH_PORT") or free_port())
        self.proc = None
        self.started_once = False

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    def start(self):
        if self.kind == "chronik":
            # The broker rejects unknown CHRONIK_* variables, so none of ours are passed on.
            env = {k: v for k, v in os.environ.items() if not k.startswith("CHRONIK_")}
            log = open(self.workdir / "chronik.log", "ab")
            self.proc = subprocess.Popen(
                [os.environ["CHRONIK_BIN_PATH"], "serve", "--listen", self.bootstrap,
                 "--data-dir", str(self.workdir / "data")],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                start_new_session=True,
            )
            deadline = time.monotonic() + 30
            while not port_open(self.port):
                assert self.proc.poll() is None, f"chronik exited with {self.proc.returncode}; see {self.workdir}/chronik.log"
                assert time.monotonic() < deadline, "chronik did not listen within 30 s"
                time.sleep(0.1)
        else:
            action = "restart" if self.started_once else "start"
            subprocess.run([str(KAFKA_SH), action, str(self.port), str(self.workdir)], check=True, timeout=120)
        self.started_once = True
        self.wait_metadata()

    def wait_metadata(self):
        admin = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 2})
        deadline = time.monotonic() + 30
        while True:
            try:
                md = admin.list_topics(timeout=2)
                if md.brokers:
                    return
            except Exception:  # noqa: BLE001 - retried until the deadline
                pass
            assert time.monotonic() < deadline, "broker did not answer metadata within 30 s"
            time.sleep(0.2)

    def pid(self):
        if self.kind == "chronik":
            return self.proc.pid
        return int((self.workdir / "kafka.pid").read_text())

    def kill9(self):
        pid = self.pid()
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc is not None:
                if self.proc.poll() is not None:
                    return
            else:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    return
            time.sleep(0.05)
        raise AssertionError(f"broker pid {pid} survived SIGKILL")

    def stop(self):
        try:
            if self.kind == "chronik":
                if self.proc and self.proc.poll() is None:
                    self.proc.send_signal(signal.SIGTERM)
                    try:
                        self.proc.wait(15)
                    except subprocess.TimeoutExpired:
                        self.proc.kill()
                        self.proc.wait(5)
            elif self.started_once:
                subprocess.run([str(KAFKA_SH), "stop", str(self.workdir)], timeout=60, check=False)
        except Exception as exc:  # noqa: BLE001
            print(f"stopping broker: {exc}")


@pytest.fixture
def broker():
    if not os.environ.get("CHRONIK_BIN_PATH") and os.environ.get("CRASH_TARGET") != "kafka":
        pytest.skip("set CHRONIK_BIN_PATH (chronik) or CRASH_TARGET=kafka (reference broker)")
    with tempfile.TemporaryDirectory(prefix="chronik-crash-") as tmp:
        b = Broker(tmp)
        try:
            yield b
        finally:
            b.stop()


def write_until_killed(broker, topic, cycle, seconds, acked, attempted):
    """Produces as fast as possible, kills the broker after `seconds`, returns acked count."""
    producer = Producer({
        "bootstrap.servers": broker.bootstrap,
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 5,
        "message.timeout.ms": 4000,
        "queue.buffering.max.messages": 20000,
        "log_level": 2,  # the connection-refused noise after the kill is expected
    })
    rng = random.Random(cycle)
    before = len(acked)

    def on_delivery(err, msg):
        if err is None:
            acked.append((msg.partition(), msg.offset(), msg.value()))

    seq = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = f"c{cycle}-s{seq}-".encode() + bytes(rng.randrange(256) for _ in range(rng.randint(0, 300)))
        try:
            producer.produce(topic, value=value, key=str(seq).encode(), partition=seq % PARTITIONS,
                             on_delivery=on_delivery)
        except BufferError:
            producer.poll(0.05)
            continue
        attempted.add(value)
        seq += 1
        producer.poll(0)
    broker.kill9()
    # Whatever was in flight at the kill is either acked already or lost for this producer:
    # drop it so it cannot be delivered to the restarted broker by this (dead) session.
    producer.poll(0.5)
    producer.purge(in_queue=True, in_flight=True)
    producer.flush(5)
    assert seq > 0
    return len(acked) - before, seq


def read_partition(bootstrap, topic, partition, end):
    consumer = Consumer({
        "bootstrap.servers": bootstrap, "group.id": "compat-unused", "enable.auto.commit": False,
        "enable.auto.offset.store": False, "auto.offset.reset": "error",
    })
    try:
        consumer.assign([TopicPartition(topic, partition, 0)])
        got = []
        deadline = time.monotonic() + 60
        while len(got) < end and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            got.append((msg.offset(), msg.value()))
        return got
    finally:
        consumer.close()


def test_acked_records_survive_kill9(broker):
    cycles = int(os.environ.get("CRASH_CYCLES", "3"))
    max_write = min(float(os.environ.get("CRASH_MAX_WRITE_S", "6")), 10.0)
    topic = f"compat-crash-{int(time.time())}-{random.randrange(1 << 20)}"
    broker.start()
    admin = AdminClient({"bootstrap.servers": broker.bootstrap, "log_level": 2})
    admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)])[topic].result(20)
    del admin  # it would keep reconnecting (and logging) while the broker is down

    acked, attempted = [], set()
    rng = random.Random()
    for cycle in range(cycles):
        if cycle > 0:
            broker.start()  # restart on the same data directory
        seconds = rng.uniform(min(2.0, max_write), max_write)
        n_acked, n_sent = write_until_killed(broker, topic, cycle, seconds, acked, attempted)
        print(f"cycle {cycle}: wrote {seconds:.1f}s, {n_sent} sent, {n_acked} acknowledged before kill -9")
        assert n_acked > 0, "nothing was acknowledged before the kill"

    broker.start()
    check = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "compat-unused"})
    by_partition = {p: {} for p in range(PARTITIONS)}
    highs = {}
    for p, off, value in acked:
        assert off not in by_partition[p], f"offset {off} of partition {p} acknowledged twice"
        by_partition[p][off] = value
    for p in range(PARTITIONS):
        low, high = check.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)
        assert low == 0
        max_acked = max(by_partition[p], default=-1)
        assert high > max_acked, f"partition {p}: high watermark {high} <= acknowledged offset {max_acked}"
        highs[p] = high
        records = read_partition(broker.bootstrap, topic, p, high)
        assert [o for o, _ in records] == list(range(high)), f"partition {p}: offsets not contiguous 0..{high - 1}"
        seen = set()
        for off, value in records:
            assert value in attempted, f"partition {p} offset {off}: a value this test never sent"
            assert value not in seen, f"partition {p} offset {off}: duplicated value"
            seen.add(value)
            if off in by_partition[p]:
                assert value == by_partition[p][off], f"partition {p} offset {off}: acknowledged value changed"
        missing = set(by_partition[p]) - {o for o, _ in records}
        assert not missing, f"partition {p}: acknowledged offsets lost: {sorted(missing)[:10]}"
    check.close()

    # The restarted broker keeps appending right after the recovered log end.
    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
    results = []
    producer.produce(topic, value=b"after-restart", partition=0,
                     on_delivery=lambda err, msg: results.append((err, msg.offset())))
    assert producer.flush(20) == 0
    assert results and results[0][0] is None, results
    assert results[0][1] == highs[0], f"new record at offset {results[0][1]}, log end was {highs[0]}"


def test_committed_offsets_survive_kill9(broker):
    topic = f"compat-crash-grp-{int(time.time())}-{random.randrange(1 << 20)}"
    group = f"compat-crash-grp-{random.randrange(1 << 30)}"
    broker.start()
    admin = AdminClient({"bootstrap.servers": broker.bootstrap, "log_level": 2})
    admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)])[topic].result(20)
    del admin
    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 5})
    for i in range(300):
        producer.produce(topic, value=f"v{i}".encode(), partition=i % PARTITIONS)
    assert producer.flush(20) == 0
    del producer  # it would keep reconnecting (and logging) while the broker is down

    # A group member consumes part of every partition and commits after each message; the last
    # commit of each partition is the one that must survive.
    conf = {
        "bootstrap.servers": broker.bootstrap, "group.id": group, "enable.auto.commit": False,
        "auto.offset.reset": "earliest", "session.timeout.ms": 6000, "log_level": 2,
    }
    consumer = Consumer(conf)
    consumer.subscribe([topic])
    targets = {0: 17, 1: 42, 2: 99}  # records to consume (and commit) per partition
    done = {p: 0 for p in range(PARTITIONS)}
    deadline = time.monotonic() + 60
    while any(done[p] < targets[p] for p in targets):
        assert time.monotonic() < deadline, f"consumed only {done} of {targets} within 60 s"
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        assert msg.error() is None, msg.error()
        p = msg.partition()
        if done[p] < targets[p]:
            assert msg.offset() == done[p], f"partition {p}: offset {msg.offset()}, expected {done[p]}"
            done[p] += 1
            consumer.commit(offsets=[TopicPartition(topic, p, done[p])], asynchronous=False)
        else:
            # Past the target: step back so the position matches what was committed.
            consumer.pause([TopicPartition(topic, p)])
    got = consumer.committed([TopicPartition(topic, p) for p in targets], timeout=10)
    assert {tp.partition: tp.offset for tp in got} == targets
    broker.kill9()  # right after the last commit was acknowledged; the member is still in the group
    consumer.close()

    broker.start()
    # The commits survived: read back with a fresh client (OffsetFetch) ...
    check = Consumer({**conf, "group.id": group})
    got = check.committed([TopicPartition(topic, p) for p in targets], timeout=20)
    assert {tp.partition: tp.offset for tp in got} == targets, "committed offsets after kill -9 and restart"
    check.close()
    # ... and a restarted member of the group resumes right after them (with auto.offset.reset
    # earliest, a lost commit would show up as a restart at offset 0).
    consumer = Consumer(conf)
    consumer.subscribe([topic])
    firsts = {}
    deadline = time.monotonic() + 60
    while len(firsts) < PARTITIONS:
        assert time.monotonic() < deadline, f"restarted member got only {firsts} within 60 s"
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        assert msg.error() is None, msg.error()
        firsts.setdefault(msg.partition(), msg.offset())
    consumer.close()
    assert firsts == targets, f"restarted member started at {firsts}, committed were {targets}"
