"""confluent-kafka (librdkafka) against the broker at BOOTSTRAP.

The data-path tests use assign() with explicit offsets and never commit; the tests named
test_group_* use consumer groups (subscribe, rebalances, commits, the group admin APIs).
"""
import random
import time

import pytest
from confluent_kafka import (
    ConsumerGroupState,
    ConsumerGroupTopicPartitions,
    OFFSET_BEGINNING,
    OFFSET_END,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicCollection,
    TopicPartition,
)
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewPartitions,
    NewTopic,
    OffsetSpec,
)

from conftest import make_records, wait_until

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
TIMEOUT = 20


@pytest.fixture(scope="module")
def admin(bootstrap):
    return AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 15000})


def create_topic(admin, name, partitions=1, config=None):
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})],
        request_timeout=TIMEOUT,
        operation_timeout=TIMEOUT,
    )
    futures[name].result(timeout=TIMEOUT)
    # Metadata may lag the controller for a moment on a real cluster.
    wait_until(
        lambda: len(admin.list_topics(topic=name, timeout=10).topics[name].partitions) == partitions
        and admin.list_topics(topic=name, timeout=10).topics[name].error is None,
        what=f"metadata of {name}",
    )
    return name


def error_code(excinfo):
    err = excinfo.value.args[0]
    assert isinstance(err, KafkaError), err
    return err.code()


def topic_configs(admin, name):
    res = ConfigResource(ConfigResource.Type.TOPIC, name)
    return admin.describe_configs([res], request_timeout=TIMEOUT)[res].result(timeout=TIMEOUT)


def new_producer(bootstrap, **extra):
    conf = {
        "bootstrap.servers": bootstrap,
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 20,
        "message.timeout.ms": 30000,
    }
    conf.update(extra)
    return Producer(conf)


def new_consumer(bootstrap):
    # group.id is mandatory in the client config but is never used: no subscribe, no commit.
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "compat-unused",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "error",
            "fetch.wait.max.ms": 200,
        }
    )


def produce_all(producer, topic, records, partitions, timestamps=None):
    """Produces records round-robin over partitions; returns delivery reports in produce order."""
    reports = [None] * len(records)

    def on_delivery(index):
        def cb(err, msg):
            reports[index] = (err, msg.partition(), msg.offset())

        return cb

    for i, (key, value, headers) in enumerate(records):
        kwargs = {}
        if timestamps is not None:
            kwargs["timestamp"] = timestamps[i]
        producer.produce(
            topic, value=value, key=key, headers=headers, partition=i % partitions,
            on_delivery=on_delivery(i), **kwargs,
        )
        producer.poll(0)
    remaining = producer.flush(TIMEOUT)
    assert remaining == 0, f"{remaining} messages not delivered"
    errors = [r for r in reports if r is None or r[0] is not None]
    assert not errors, errors[:5]
    return [(p, o) for _, p, o in reports]


def consume_exact(bootstrap, topic, partition_offsets, count, timeout=TIMEOUT):
    """Assigns {partition: start_offset} and reads exactly `count` messages (bounded)."""
    consumer = new_consumer(bootstrap)
    try:
        consumer.assign([TopicPartition(topic, p, o) for p, o in partition_offsets.items()])
        got = []
        deadline = time.monotonic() + timeout
        while len(got) < count and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            got.append(msg)
        assert len(got) == count, f"consumed {len(got)} of {count} messages"
        # Nothing more must arrive.
        extra = consumer.poll(1.0)
        assert extra is None or extra.error() is not None, (extra.partition(), extra.offset())
        return got
    finally:
        consumer.close()


# --- admin ------------------------------------------------------------------------------------


def test_create_topic_with_configs_and_describe(admin, topic_name):
    name = create_topic(
        admin, topic_name(), partitions=3,
        config={"retention.ms": "3600000", "cleanup.policy": "delete", "max.message.bytes": "2000000"},
    )
    md = admin.list_topics(timeout=10)
    assert name in md.topics
    assert sorted(md.topics[name].partitions) == [0, 1, 2]
    assert len(md.brokers) >= 1
    for p in md.topics[name].partitions.values():
        assert p.leader in md.brokers
    configs = topic_configs(admin, name)
    assert configs["retention.ms"].value == "3600000"
    assert configs["retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert configs["max.message.bytes"].value == "2000000"
    assert configs["cleanup.policy"].value == "delete"
    # A config not set on the topic is reported with its default value.
    assert "segment.bytes" in configs
    assert configs["segment.bytes"].source != ConfigSource.DYNAMIC_TOPIC_CONFIG.value


def test_describe_topics_and_cluster(admin, topic_name):
    name = create_topic(admin, topic_name(), partitions=2)
    desc = admin.describe_topics(TopicCollection([name]), request_timeout=TIMEOUT)[name].result(TIMEOUT)
    assert desc.name == name
    assert desc.topic_id is not None
    assert [p.id for p in desc.partitions] == [0, 1]
    for p in desc.partitions:
        assert p.leader is not None
        assert [n.id for n in p.isr] == [p.leader.id]
    cluster = admin.describe_cluster(request_timeout=TIMEOUT).result(TIMEOUT)
    assert cluster.cluster_id
    assert len(cluster.nodes) >= 1
    assert all(n.port > 0 for n in cluster.nodes)


def test_create_validate_only_does_not_create(admin, topic_name):
    name = topic_name()
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=2, replication_factor=1)], validate_only=True,
        request_timeout=TIMEOUT,
    )
    futures[name].result(timeout=TIMEOUT)
    time.sleep(1)
    assert name not in admin.list_topics(timeout=10).topics


def test_create_existing_topic_fails(admin, topic_name):
    name = create_topic(admin, topic_name())
    fut = admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)],
                              request_timeout=TIMEOUT)[name]
    with pytest.raises(KafkaException) as excinfo:
        fut.result(timeout=TIMEOUT)
    assert error_code(excinfo) == KafkaError.TOPIC_ALREADY_EXISTS


@pytest.mark.parametrize("bad", ["bad name!", "x" * 250, ".."])
def test_invalid_topic_name_rejected(admin, bad):
    fut = admin.create_topics([NewTopic(bad, num_partitions=1, replication_factor=1)],
                              request_timeout=TIMEOUT)[bad]
    with pytest.raises(KafkaException) as excinfo:
        fut.result(timeout=TIMEOUT)
    assert error_code(excinfo) == KafkaError.TOPIC_EXCEPTION  # INVALID_TOPIC_EXCEPTION (17)


@pytest.mark.parametrize(
    "config",
    [{"cleanup.policy": "no-such-policy"}, {"retention.ms": "not-a-number"}, {"no.such.config": "1"}],
    ids=["bad-enum", "bad-number", "unknown-key"],
)
def test_invalid_config_rejected(admin, topic_name, config):
    name = topic_name()
    fut = admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1, config=config)],
                              request_timeout=TIMEOUT)[name]
    with pytest.raises(KafkaException) as excinfo:
        fut.result(timeout=TIMEOUT)
    assert error_code(excinfo) == KafkaError.INVALID_CONFIG
    assert name not in admin.list_topics(timeout=10).topics


def test_incremental_alter_configs(admin, topic_name):
    name = create_topic(admin, topic_name(), config={"retention.ms": "3600000", "max.message.bytes": "500000"})
    res = ConfigResource(
        ConfigResource.Type.TOPIC, name,
        incremental_configs=[
            ConfigEntry("retention.ms", "7200000", incremental_operation=AlterConfigOpType.SET),
            ConfigEntry("max.message.bytes", None, incremental_operation=AlterConfigOpType.DELETE),
            ConfigEntry("segment.ms", "86400000", incremental_operation=AlterConfigOpType.SET),
        ],
    )
    admin.incremental_alter_configs([res], request_timeout=TIMEOUT)[res].result(timeout=TIMEOUT)
    configs = wait_until(
        lambda: (c := topic_configs(admin, name))["retention.ms"].value == "7200000" and c,
        what="altered retention.ms",
    )
    assert configs["segment.ms"].value == "86400000"
    assert configs["segment.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert configs["max.message.bytes"].source != ConfigSource.DYNAMIC_TOPIC_CONFIG.value

    bad = ConfigResource(
        ConfigResource.Type.TOPIC, name,
        incremental_configs=[ConfigEntry("retention.ms", "soon", incremental_operation=AlterConfigOpType.SET)],
    )
    with pytest.raises(KafkaException) as excinfo:
        admin.incremental_alter_configs([bad], request_timeout=TIMEOUT)[bad].result(timeout=TIMEOUT)
    assert error_code(excinfo) == KafkaError.INVALID_CONFIG
    assert topic_configs(admin, name)["retention.ms"].value == "7200000"


def test_create_partitions(admin, topic_name, bootstrap):
    name = create_topic(admin, topic_name(), partitions=1)
    admin.create_partitions([NewPartitions(name, 3)], request_timeout=TIMEOUT)[name].result(timeout=TIMEOUT)
    wait_until(lambda: len(admin.list_topics(topic=name, timeout=10).topics[name].partitions) == 3,
               what="3 partitions")
    # The new partitions take writes.
    producer = new_producer(bootstrap)
    reports = produce_all(producer, name, make_records(6, seed=7), partitions=3)
    assert sorted(reports) == [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1)]
    # Shrinking is refused.
    fut = admin.create_partitions([NewPartitions(name, 2)], request_timeout=TIMEOUT)[name]
    with pytest.raises(KafkaException) as excinfo:
        fut.result(timeout=TIMEOUT)
    assert error_code(excinfo) == KafkaError.INVALID_PARTITIONS


def test_delete_topic(admin, topic_name):
    name = create_topic(admin, topic_name(), partitions=2)
    admin.delete_topics([name], operation_timeout=TIMEOUT, request_timeout=TIMEOUT)[name].result(timeout=TIMEOUT)
    wait_until(lambda: name not in admin.list_topics(timeout=10).topics, what=f"{name} gone")
    fut = admin.delete_topics([name], request_timeout=TIMEOUT)[name]
    with pytest.raises(KafkaException) as excinfo:
        fut.result(timeout=TIMEOUT)
    assert error_code(excinfo) == KafkaError.UNKNOWN_TOPIC_OR_PART


# --- produce / consume ------------------------------------------------------------------------


@pytest.mark.parametrize("codec", CODECS)
def test_produce_consume_roundtrip(admin, bootstrap, topic_name, codec):
    partitions = 3
    name = create_topic(admin, topic_name(), partitions=partitions)
    records = make_records(120, seed=hash(codec) & 0xFFFF)
    producer = new_producer(bootstrap, **{"compression.type": codec})
    reports = produce_all(producer, name, records, partitions)

    # Per partition, offsets are 0..n-1 in produce order.
    for p in range(partitions):
        offsets = [o for (pp, o) in reports if pp == p]
        assert offsets == list(range(len(offsets))), (p, offsets[:10])

    got = consume_exact(bootstrap, name, {p: 0 for p in range(partitions)}, len(records))
    by_partition = {p: [m for m in got if m.partition() == p] for p in range(partitions)}
    for i, (key, value, headers) in enumerate(records):
        p = i % partitions
        msg = by_partition[p][i // partitions]
        assert msg.offset() == reports[i][1]
        assert msg.key() == key
        assert msg.value() == value  # an empty value stays empty, never null
        assert msg.headers() == headers, (i, msg.headers())
        ts_type, ts = msg.timestamp()
        assert ts_type == 1 and abs(ts - time.time() * 1000) < 600_000  # CreateTime, recent

    low, high = new_consumer(bootstrap).get_watermark_offsets(TopicPartition(name, 0), timeout=10)
    assert (low, high) == (0, len(by_partition[0]))


def test_null_key_and_null_value(admin, bootstrap, topic_name):
    name = create_topic(admin, topic_name())
    producer = new_producer(bootstrap)
    producer.produce(name, value=None, key=b"tombstone")
    producer.produce(name, value=b"v", key=None)
    assert producer.flush(TIMEOUT) == 0
    got = consume_exact(bootstrap, name, {0: 0}, 2)
    assert (got[0].key(), got[0].value()) == (b"tombstone", None)
    assert (got[1].key(), got[1].value()) == (None, b"v")


def test_consume_from_middle_and_end(admin, bootstrap, topic_name):
    name = create_topic(admin, topic_name())
    records = make_records(30, seed=3)
    produce_all(new_producer(bootstrap), name, records, 1)
    got = consume_exact(bootstrap, name, {0: 17}, 13)
    assert [m.offset() for m in got] == list(range(17, 30))
    assert [m.key() for m in got] == [r[0] for r in records[17:]]
    # Starting at the log end yields nothing.
    consumer = new_consumer(bootstrap)
    consumer.assign([TopicPartition(name, 0, OFFSET_END)])
    try:
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            msg = consumer.poll(0.3)
            assert msg is None or msg.error() is not None
    finally:
        consumer.close()


def test_offsets_for_times_and_list_offsets(admin, bootstrap, topic_name):
    name = create_topic(admin, topic_name())
    base = int(time.time() * 1000) - 3_600_000
    records = make_records(10, seed=11)
    timestamps = [base + i * 1000 for i in range(10)]
    timestamps[7] = base + 100_000  # the largest timestamp sits at offset 7
    produce_all(new_producer(bootstrap), name, records, 1, timestamps=timestamps)

    consumer = new_consumer(bootstrap)
    try:
        def lookup(ts):
            return consumer.offsets_for_times([TopicPartition(name, 0, ts)], timeout=10)[0].offset

        assert lookup(base) == 0
        assert lookup(base - 10_000) == 0
        assert lookup(base + 3000) == 3
        assert lookup(base + 3500) == 4
        assert lookup(base + 50_000) == 7
        assert lookup(base + 200_000) == -1  # after every record: no offset
        assert consumer.get_watermark_offsets(TopicPartition(name, 0), timeout=10, cached=False) == (0, 10)
    finally:
        consumer.close()

    tp = TopicPartition(name, 0)

    def list_offset(spec):
        return admin.list_offsets({tp: spec}, request_timeout=TIMEOUT)[tp].result(TIMEOUT)

    assert list_offset(OffsetSpec.earliest()).offset == 0
    assert list_offset(OffsetSpec.latest()).offset == 10
    maxts = list_offset(OffsetSpec.max_timestamp())
    assert (maxts.offset, maxts.timestamp) == (7, base + 100_000)
    assert list_offset(OffsetSpec.for_timestamp(base + 5000)).offset == 5


def test_delete_records(admin, bootstrap, topic_name):
    name = create_topic(admin, topic_name())
    records = make_records(20, seed=5)
    produce_all(new_producer(bootstrap), name, records, 1)
    tp = TopicPartition(name, 0, 8)
    result = admin.delete_records([tp], request_timeout=TIMEOUT, operation_timeout=TIMEOUT)
    deleted = list(result.values())[0].result(TIMEOUT)
    assert deleted.low_watermark == 8
    consumer = new_consumer(bootstrap)
    try:
        assert consumer.get_watermark_offsets(TopicPartition(name, 0), timeout=10, cached=False) == (8, 20)
    finally:
        consumer.close()
    got = consume_exact(bootstrap, name, {0: OFFSET_BEGINNING}, 12)
    assert [m.offset() for m in got] == list(range(8, 20))
    assert [m.value() or b"" for m in got] == [r[1] for r in records[8:]]
    # Deleting beyond the high watermark is refused.
    bad = TopicPartition(name, 0, 50)
    fut = list(admin.delete_records([bad], request_timeout=TIMEOUT).values())[0]
    with pytest.raises(KafkaException) as excinfo:
        fut.result(TIMEOUT)
    assert error_code(excinfo) == KafkaError.OFFSET_OUT_OF_RANGE


def test_produce_to_missing_partition_fails(admin, bootstrap, topic_name):
    name = create_topic(admin, topic_name(), partitions=2)
    producer = new_producer(bootstrap, **{"message.timeout.ms": 5000})
    producer.list_topics(topic=name, timeout=10)  # learn the partition count first
    errors = []
    try:
        producer.produce(name, value=b"x", partition=7, on_delivery=lambda err, msg: errors.append(err))
        producer.flush(10)
    except KafkaException as exc:
        errors.append(exc.args[0])
    assert len(errors) == 1 and errors[0] is not None
    assert errors[0].code() in (KafkaError._UNKNOWN_PARTITION, KafkaError.UNKNOWN_TOPIC_OR_PART)


def test_fetch_out_of_range_reports_error(admin, bootstrap, topic_name):
    name = create_topic(admin, topic_name())
    produce_all(new_producer(bootstrap), name, make_records(3, seed=1), 1)
    consumer = new_consumer(bootstrap)  # auto.offset.reset=error
    consumer.assign([TopicPartition(name, 0, 100)])
    try:
        err = None
        deadline = time.monotonic() + TIMEOUT
        while err is None and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None:
                assert msg.error() is not None, ("unexpected message", msg.offset())
                err = msg.error()
        assert err is not None and err.code() == KafkaError._AUTO_OFFSET_RESET, err
    finally:
        consumer.close()


def test_fetch_respects_max_bytes(admin, bootstrap, topic_name):
    """A broker that ignores fetch.max.bytes / max.partition.fetch.bytes sends responses larger
    than receive.message.max.bytes, which librdkafka rejects: the consume then fails."""
    name = create_topic(admin, topic_name(), partitions=2)
    value = bytes(range(256)) * 400  # ~100 KB, incompressible enough with no codec
    # Batches of at most ~2 records keep every single batch below the fetch limits below.
    producer = new_producer(bootstrap, **{"compression.type": "none", "linger.ms": 50, "batch.size": 250_000})
    records = [(b"k%d" % i, value[i:] + value[:i], []) for i in range(60)]  # ~6 MB over 2 partitions
    produce_all(producer, name, records, 2)
    consumer = Consumer({
        "bootstrap.servers": bootstrap, "group.id": "compat-unused", "enable.auto.commit": False,
        "auto.offset.reset": "error", "fetch.max.bytes": 400_000, "message.max.bytes": 300_000,
        "max.partition.fetch.bytes": 150_000,
        "receive.message.max.bytes": 1_000_000, "fetch.wait.max.ms": 200,
    })
    try:
        consumer.assign([TopicPartition(name, 0, 0), TopicPartition(name, 1, 0)])
        got = []
        deadline = time.monotonic() + 30
        while len(got) < len(records) and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            got.append(msg)
        assert len(got) == len(records)
        for msg in got:
            i = int(msg.key()[1:])
            assert msg.partition() == i % 2 and msg.offset() == i // 2
            assert msg.value() == records[i][1]
    finally:
        consumer.close()


def test_long_poll_fetch_wakes_on_append(admin, bootstrap, topic_name):
    """A consumer waiting at the log end with a 5 s fetch.wait.max.ms must see a new record
    promptly, not after the full wait."""
    name = create_topic(admin, topic_name())
    consumer = Consumer({
        "bootstrap.servers": bootstrap, "group.id": "compat-unused", "enable.auto.commit": False,
        "auto.offset.reset": "error", "fetch.wait.max.ms": 5000, "fetch.min.bytes": 1,
    })
    producer = new_producer(bootstrap, **{"linger.ms": 0})
    try:
        consumer.assign([TopicPartition(name, 0, 0)])
        for _ in range(6):  # let the consumer settle into a long poll at offset 0
            assert consumer.poll(0.5) is None
        latencies = []
        for i in range(3):
            sent = time.monotonic()
            producer.produce(name, value=b"wake-%d" % i, partition=0)
            assert producer.flush(10) == 0
            msg = None
            while msg is None and time.monotonic() - sent < 15:
                msg = consumer.poll(0.1)
            assert msg is not None and msg.error() is None, msg and msg.error()
            assert msg.value() == b"wake-%d" % i
            latencies.append(time.monotonic() - sent)
            time.sleep(0.5)
        assert max(latencies) < 2.5, f"records arrived only after {latencies} s (long poll not woken)"
    finally:
        consumer.close()


def test_record_larger_than_topic_limit_rejected(admin, bootstrap, topic_name):
    name = create_topic(admin, topic_name(), config={"max.message.bytes": "20000"})
    producer = new_producer(bootstrap, **{"compression.type": "none", "message.timeout.ms": 10000})
    errors = []
    producer.produce(name, value=b"z" * 50_000, partition=0, on_delivery=lambda err, msg: errors.append(err))
    producer.flush(15)
    assert len(errors) == 1 and errors[0] is not None
    assert errors[0].code() == KafkaError.MSG_SIZE_TOO_LARGE, errors[0]
    # A record under the limit still goes through, at offset 0 (nothing was appended before).
    reports = produce_all(new_producer(bootstrap), name, [(b"k", b"y" * 1000, [])], 1)
    assert reports == [(0, 0)]


def test_large_record_roundtrip(admin, bootstrap, topic_name):
    name = create_topic(admin, topic_name())
    big = random.Random(42).randbytes(900_000)
    produce_all(new_producer(bootstrap, **{"compression.type": "zstd"}), name, [(b"big", big, [("h", b"v")])], 1)
    [msg] = consume_exact(bootstrap, name, {0: 0}, 1)
    assert msg.value() == big and msg.headers() == [("h", b"v")]


# --- consumer groups ---------------------------------------------------------------------------

def group_consumer(bootstrap, group, **extra):
    conf = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 500,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "fetch.wait.max.ms": 200,
    }
    conf.update(extra)
    return Consumer(conf)


def owned(consumer):
    return {tp.partition for tp in consumer.assignment()}


def poll_all(consumers, seen, seconds):
    """Polls every consumer once for up to `seconds` in all; records (consumer, partition, offset, value)."""
    for i, c in enumerate(consumers):
        msg = c.poll(seconds / len(consumers))
        if msg is None:
            continue
        assert msg.error() is None, msg.error()
        seen.append((i, msg.partition(), msg.offset(), msg.value()))
        c.commit(message=msg, asynchronous=False)


def poll_until(consumers, seen, predicate, what, timeout=30):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        poll_all(consumers, seen, 0.2)


def group_offsets(admin, group, topic):
    res = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)], request_timeout=TIMEOUT)
    return {tp.partition: tp.offset for tp in res[group].result(timeout=TIMEOUT).topic_partitions
            if tp.topic == topic}


@pytest.mark.parametrize("strategy", ["range", "cooperative-sticky"])
def test_group_two_members_split_commit_leave(admin, bootstrap, topic_name, strategy):
    topic = create_topic(admin, topic_name(), partitions=4)
    group = topic_name("group")
    consumers = [group_consumer(bootstrap, group, **{"partition.assignment.strategy": strategy}) for _ in range(2)]
    seen = []
    try:
        for c in consumers:
            c.subscribe([topic])
        poll_until(consumers, seen,
                   lambda: owned(consumers[0]) and owned(consumers[1])
                   and owned(consumers[0]) | owned(consumers[1]) == {0, 1, 2, 3}
                   and not owned(consumers[0]) & owned(consumers[1]),
                   "both members to share the 4 partitions")
        split = [owned(c) for c in consumers]

        desc = admin.describe_consumer_groups([group], request_timeout=TIMEOUT)[group].result(timeout=TIMEOUT)
        assert desc.state == ConsumerGroupState.STABLE, desc.state
        assert len(desc.members) == 2, desc.members
        assert sorted(tp.partition for m in desc.members for tp in m.assignment.topic_partitions) == [0, 1, 2, 3]
        listed = admin.list_consumer_groups(request_timeout=TIMEOUT).result(timeout=TIMEOUT)
        assert group in {g.group_id for g in listed.valid}, listed.valid

        producer = new_producer(bootstrap)
        produce_all(producer, topic, make_records(100, 1)[:100], 4)
        poll_until(consumers, seen, lambda: len({(p, o) for _, p, o, _ in seen}) >= 100, "100 records")
        for i, p, o, _ in seen:
            assert p in split[i], f"member {i} read partition {p} outside its assignment {split[i]}"
        assert sorted({(p, o) for _, p, o, _ in seen}) == sorted((p, o) for p in range(4) for o in range(25))
        assert group_offsets(admin, group, topic) == {p: 25 for p in range(4)}
        assert {tp.partition: tp.offset for tp in consumers[0].committed(
            [TopicPartition(topic, p) for p in range(4)], timeout=TIMEOUT)} == {p: 25 for p in range(4)}

        # The second member leaves (LeaveGroup); the first takes over its partitions.
        consumers[1].close()
        consumers = consumers[:1]
        poll_until(consumers, seen, lambda: owned(consumers[0]) == {0, 1, 2, 3}, "the remaining member to own all partitions")
        seen.clear()
        produce_all(producer, topic, make_records(20, 2), 4)
        poll_until(consumers, seen, lambda: len(seen) >= 20, "the 20 new records")
        assert sorted((p, o) for _, p, o, _ in seen) == sorted((p, o) for p in range(4) for o in range(25, 30))
        assert group_offsets(admin, group, topic) == {p: 30 for p in range(4)}
    finally:
        for c in consumers:
            c.close()

    desc = admin.describe_consumer_groups([group], request_timeout=TIMEOUT)[group].result(timeout=TIMEOUT)
    assert desc.state == ConsumerGroupState.EMPTY and not desc.members, (desc.state, desc.members)
    admin.delete_consumer_groups([group], request_timeout=TIMEOUT)[group].result(timeout=TIMEOUT)
    listed = admin.list_consumer_groups(request_timeout=TIMEOUT).result(timeout=TIMEOUT)
    assert group not in {g.group_id for g in listed.valid}
    with pytest.raises(KafkaException) as excinfo:
        admin.delete_consumer_groups([group], request_timeout=TIMEOUT)[group].result(timeout=TIMEOUT)
    assert error_code(excinfo) == KafkaError.GROUP_ID_NOT_FOUND


def test_group_commit_with_metadata_and_resume(admin, bootstrap, topic_name):
    topic = create_topic(admin, topic_name(), partitions=2)
    group = topic_name("group")
    producer = new_producer(bootstrap)
    produce_all(producer, topic, make_records(40, 3), 2)
    # Offsets committed without ever joining (a "simple" consumer group), with metadata.
    c = group_consumer(bootstrap, group)
    try:
        c.commit(offsets=[TopicPartition(topic, 0, 7, metadata="seven"), TopicPartition(topic, 1, 12)],
                 asynchronous=False)
        got = c.committed([TopicPartition(topic, 0), TopicPartition(topic, 1)], timeout=TIMEOUT)
        assert [(tp.partition, tp.offset, tp.metadata) for tp in got] == [(0, 7, "seven"), (1, 12, "")] or \
            [(tp.partition, tp.offset, tp.metadata) for tp in got] == [(0, 7, "seven"), (1, 12, None)]
        # A later commit overwrites; committed() of a partition never committed is OFFSET_INVALID (-1001).
        c.commit(offsets=[TopicPartition(topic, 0, 9)], asynchronous=False)
        other = topic_name("never")
        got = c.committed([TopicPartition(topic, 0), TopicPartition(other, 0)], timeout=TIMEOUT)
        assert [tp.offset for tp in got] == [9, -1001]
    finally:
        c.close()

    # A subscribing member of the group starts exactly at the committed offsets.
    c = group_consumer(bootstrap, group, **{"partition.assignment.strategy": "cooperative-sticky"})
    try:
        c.subscribe([topic])
        firsts = {}
        deadline = time.monotonic() + 30
        while len(firsts) < 2:
            assert time.monotonic() < deadline, f"only {firsts} after 30 s"
            msg = c.poll(0.5)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            firsts.setdefault(msg.partition(), msg.offset())
        assert firsts == {0: 9, 1: 12}
    finally:
        c.close()
