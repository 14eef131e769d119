"""kafka-python (3.x, pure Python) against the broker at BOOTSTRAP.

No consumer groups: KafkaConsumer(group_id=None) with assign() + seek().
"""
import time

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, OffsetSpec
from kafka.errors import (
    InvalidConfigurationError,
    InvalidPartitionsError,
    InvalidTopicError,
    TopicAlreadyExistsError,
    UnknownTopicOrPartitionError,
)

from conftest import make_records, wait_until

CODECS = [None, "gzip", "snappy", "lz4", "zstd"]


@pytest.fixture(scope="module")
def admin(bootstrap):
    client = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=20000)
    yield client
    client.close()


def create_topic(admin, name, partitions=1, configs=None):
    admin.create_topics(
        {name: {"num_partitions": partitions, "replication_factor": 1, "configs": configs or {}}},
        wait_for_metadata=True,
    )
    return name


def new_consumer(bootstrap):
    return KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="none",
        fetch_max_wait_ms=200,
        request_timeout_ms=20000,
    )


def read_exact(consumer, count, timeout=20.0):
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            got.extend(records)
    assert len(got) == count, f"consumed {len(got)} of {count} records"
    assert not any(consumer.poll(timeout_ms=1000).values()), "records beyond the expected end"
    return got


def test_admin_create_describe_delete(admin, topic_name):
    name = create_topic(admin, topic_name(), partitions=3, configs={"retention.ms": "3600000"})
    assert name in admin.list_topics()
    [desc] = admin.describe_topics([name])
    assert desc["error_code"] == 0
    assert sorted(p["partition_index"] for p in desc["partitions"]) == [0, 1, 2]
    assert all(p["leader_id"] >= 0 for p in desc["partitions"])

    configs = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name)])["topic"][name]
    assert configs["retention.ms"]["value"] == "3600000"
    assert configs["retention.ms"]["config_source"] == "DYNAMIC_TOPIC_CONFIG"

    result = admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, name, configs={"retention.ms": "7200000"})])
    assert result["topic"][name] == "OK", result
    configs = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name)])["topic"][name]
    assert configs["retention.ms"]["value"] == "7200000"

    with pytest.raises(TopicAlreadyExistsError):
        create_topic(admin, name)

    admin.create_partitions({name: 5})
    wait_until(lambda: len(admin.describe_topics([name])[0]["partitions"]) == 5, what="5 partitions")
    with pytest.raises(InvalidPartitionsError):
        admin.create_partitions({name: 2})

    admin.delete_topics([name])
    wait_until(lambda: name not in admin.list_topics(), what=f"{name} deleted")
    with pytest.raises(UnknownTopicOrPartitionError):
        admin.delete_topics([name])


def test_admin_validate_only_and_bad_input(admin, topic_name):
    name = topic_name()
    admin.create_topics({name: {"num_partitions": 1, "replication_factor": 1}}, validate_only=True)
    time.sleep(1)
    assert name not in admin.list_topics()
    with pytest.raises(InvalidTopicError):
        admin.create_topics({"bad name!": {"num_partitions": 1, "replication_factor": 1}})
    with pytest.raises(InvalidConfigurationError):
        admin.create_topics({name: {"num_partitions": 1, "replication_factor": 1,
                                    "configs": {"cleanup.policy": "nonsense"}}})
    assert name not in admin.list_topics()


def test_describe_cluster(admin):
    cluster = admin.describe_cluster()
    assert cluster["cluster_id"]
    assert cluster["brokers"] and all(b["port"] > 0 for b in cluster["brokers"])
    assert cluster["controller_id"] in {b["broker_id"] for b in cluster["brokers"]}


@pytest.mark.parametrize("codec", CODECS, ids=[c or "none" for c in CODECS])
def test_produce_consume_roundtrip(admin, bootstrap, topic_name, codec):
    partitions = 2
    name = create_topic(admin, topic_name(), partitions=partitions)
    records = make_records(80, seed=101)
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", compression_type=codec,
                             linger_ms=20, request_timeout_ms=20000)
    futures = [producer.send(name, key=k, value=v, headers=h, partition=i % partitions)
               for i, (k, v, h) in enumerate(records)]
    producer.flush(timeout=30)
    metadata = [f.get(timeout=30) for f in futures]
    producer.close(timeout=10)
    for p in range(partitions):
        offsets = [m.offset for m in metadata if m.partition == p]
        assert offsets == list(range(len(offsets)))

    consumer = new_consumer(bootstrap)
    try:
        tps = [TopicPartition(name, p) for p in range(partitions)]
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, 0)
        got = read_exact(consumer, len(records))
    finally:
        consumer.close()
    by_partition = {p: [r for r in got if r.partition == p] for p in range(partitions)}
    for i, (key, value, headers) in enumerate(records):
        rec = by_partition[i % partitions][i // partitions]
        assert rec.offset == metadata[i].offset
        assert rec.key == key
        assert rec.value == value
        assert [(k, v) for k, v in rec.headers] == headers


def test_offsets_for_times_and_bounds(admin, bootstrap, topic_name):
    name = create_topic(admin, topic_name())
    base = int(time.time() * 1000) - 3_600_000
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for i in range(10):
        producer.send(name, value=b"v%d" % i, partition=0, timestamp_ms=base + i * 1000)
    producer.flush(timeout=30)
    producer.close(timeout=10)

    tp = TopicPartition(name, 0)
    consumer = new_consumer(bootstrap)
    try:
        assert consumer.beginning_offsets([tp]) == {tp: 0}
        assert consumer.end_offsets([tp]) == {tp: 10}
        found = consumer.offsets_for_times({tp: base + 4000})[tp]
        assert (found.offset, found.timestamp) == (4, base + 4000)
        assert consumer.offsets_for_times({tp: base + 4500})[tp].offset == 5
        assert consumer.offsets_for_times({tp: base + 60_000})[tp] is None

        consumer.assign([tp])
        consumer.seek(tp, 6)
        got = read_exact(consumer, 4)
        assert [(r.offset, r.value, r.timestamp) for r in got] == [
            (i, b"v%d" % i, base + i * 1000) for i in range(6, 10)]
    finally:
        consumer.close()

    offsets = admin.list_partition_offsets({tp: OffsetSpec.LATEST})
    assert offsets[tp].offset == 10
    offsets = admin.list_partition_offsets({tp: OffsetSpec.EARLIEST})
    assert offsets[tp].offset == 0


def test_delete_records(admin, bootstrap, topic_name):
    name = create_topic(admin, topic_name())
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for i in range(10):
        producer.send(name, value=b"r%d" % i, partition=0)
    producer.flush(timeout=30)
    producer.close(timeout=10)
    tp = TopicPartition(name, 0)
    admin.delete_records({tp: 4})
    consumer = new_consumer(bootstrap)
    try:
        assert consumer.beginning_offsets([tp]) == {tp: 4}
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        got = read_exact(consumer, 6)
        assert [r.offset for r in got] == list(range(4, 10))
    finally:
        consumer.close()
