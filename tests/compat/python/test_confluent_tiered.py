"""Tiered storage (KIP-405) seen through confluent-kafka (librdkafka): part of the confluent suite.

A topic with remote.storage.enable=true, small segments and local.retention.bytes=1 keeps only
its active segment on local disk; everything older must come back from the remote tier exactly
as it was written. The earliest-local (-4) and latest-tiered (-5) ListOffsets specs are not in
confluent-kafka's OffsetSpec, so those two lookups go through kafka-python's admin client.

When REMOTE_TIER_URL (s3://bucket/prefix) and REMOTE_TIER_ENDPOINT are set (tests/run.sh sets
them when it starts chronik against LocalStack), the objects in the bucket are checked too.
Skipped with TARGET=kafka: the reference Kafka runs without a remote storage manager.
"""
import os
import random
import re
import struct
import time
import uuid
import warnings

import pytest
from confluent_kafka import Consumer, TopicCollection, TopicPartition
from confluent_kafka.admin import OffsetSpec
from kafka import TopicPartition as KpTopicPartition
from kafka.admin import KafkaAdminClient
from kafka.admin import OffsetSpec as KpOffsetSpec

from conftest import wait_until
from test_confluent import CODECS, TIMEOUT, admin, create_topic, new_producer, produce_all  # noqa: F401

pytestmark = pytest.mark.tiered

N = 4000
SEGMENT_BYTES = 65536
TS_STEP = 10  # ms between consecutive record timestamps
# How long earliest-local and latest-tiered must stay put to count as settled: several passes of
# the remote log manager (run.sh sets its interval to 200 ms; the default is 1 s).
STABLE_SECONDS = 2.5
OBJECT_NAME = re.compile(r"^(\d{20})-([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.(log|index|timeindex|snapshot)$")


def tiered_records(n, seed):
    """Keyed records of every shape: all byte values, empty, null, random, compressible, zeros."""
    rng = random.Random(seed)
    records = []
    for i in range(n):
        kind = i % 7
        if kind == 0:
            value = bytes(range(256))
        elif kind == 1:
            value = b""
        elif kind == 2:
            value = rng.randbytes(rng.randint(1, 300))
        elif kind == 3:
            value = rng.randbytes(2000)  # incompressible
        elif kind == 4:
            value = ("tiered ✓ %d " % i).encode() * 20
        elif kind == 5:
            value = None
        else:
            value = b"\x00" * 500 + bytes([i % 256])
        key = b"tk-%d-" % i + rng.randbytes(6)
        headers = [("idx", str(i).encode()), ("bin", bytes([0, 255, i % 256]))]
        if i % 5 == 0:
            headers += [("dup", b"a"), ("dup", b"b")]
        records.append((key, value, headers))
    return records


@pytest.fixture(scope="module")
def kp_admin(bootstrap):
    client = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=20000)
    yield client
    client.close()


def tiered_consumer(bootstrap, **extra):
    conf = {
        "bootstrap.servers": bootstrap,
        "group.id": "compat-unused",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "error",
        "fetch.wait.max.ms": 200,
        "check.crcs": True,  # every batch read back from the remote tier is CRC-checked
    }
    conf.update(extra)
    return Consumer(conf)


def read_from(bootstrap, topic, offset, count, timeout, **extra):
    """Reads `count` messages of partition 0 from `offset` (bounded); asserts nothing follows
    when the read reaches the end of the log."""
    consumer = tiered_consumer(bootstrap, **extra)
    try:
        consumer.assign([TopicPartition(topic, 0, offset)])
        got = []
        deadline = time.monotonic() + timeout
        while len(got) < count and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            got.append(msg)
        assert len(got) >= count, f"consumed {len(got)} of {count} messages from offset {offset} in {timeout}s"
        return got[:count]
    finally:
        consumer.close()


def topic_uuid(admin, name):
    desc = admin.describe_topics(TopicCollection([name]), request_timeout=TIMEOUT)[name].result(TIMEOUT)
    tid = desc.topic_id
    mask = (1 << 64) - 1
    return uuid.UUID(int=((tid.get_most_significant_bits() & mask) << 64) | (tid.get_least_significant_bits() & mask))


def s3_target():
    """(boto3 client, bucket, prefix) of the broker's remote tier, or None when not on S3."""
    url, endpoint = os.environ.get("REMOTE_TIER_URL", ""), os.environ.get("REMOTE_TIER_ENDPOINT", "")
    if not url.startswith("s3://") or not endpoint:
        return None
    import boto3  # only needed here; tests/setup/requirements.txt installs it

    bucket, _, prefix = url[len("s3://"):].partition("/")
    client = boto3.client(
        "s3", endpoint_url=endpoint, region_name=os.environ.get("AWS_REGION", "us-east-1"),
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "test"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "test"),
    )
    return client, bucket, prefix.strip("/")


def list_keys(client, bucket, prefix):
    keys = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(o["Key"] for o in page.get("Contents", []))
    return keys


def batch_spans(data):
    """(base offset, last offset) of every record batch in a segment file; checks the framing."""
    spans = []
    pos = 0
    while pos < len(data):
        assert len(data) - pos >= 61, f"truncated batch header at byte {pos} of {len(data)}"
        base, length = struct.unpack_from(">qi", data, pos)
        magic = data[pos + 16]
        (last_delta,) = struct.unpack_from(">i", data, pos + 23)
        assert magic == 2, f"batch at byte {pos} has magic {magic}"
        assert pos + 12 + length <= len(data), f"batch at byte {pos} runs past the end of the object"
        spans.append((base, base + last_delta))
        pos += 12 + length
    return spans


def test_tiered_topic_roundtrip_from_remote(admin, kp_admin, bootstrap, topic_name):
    started = time.monotonic()
    name = create_topic(admin, topic_name(), config={
        "remote.storage.enable": "true",
        "segment.bytes": str(SEGMENT_BYTES),
        "local.retention.bytes": "1",
    })
    records = tiered_records(N, seed=405)
    base_ts = int(time.time() * 1000) - 3_600_000
    timestamps = [base_ts + i * TS_STEP for i in range(N)]

    # One producer (idempotent, acks=all) per codec, one after the other, so offsets follow the
    # record order.
    chunk = N // len(CODECS)
    reports = []
    for c, codec in enumerate(CODECS):
        lo, hi = c * chunk, (N if c == len(CODECS) - 1 else (c + 1) * chunk)
        producer = new_producer(bootstrap, **{"compression.type": codec, "linger.ms": 5, "batch.size": 16384})
        reports += produce_all(producer, name, records[lo:hi], 1, timestamps=timestamps[lo:hi])
    assert reports == [(0, i) for i in range(N)], "offsets are dense and in produce order"

    # Wait until every sealed segment is remote and its local copy gone: the local log then
    # starts right after the last tiered offset, and stays there (the remote log manager may
    # still be working through sealed segments while the two are adjacent).
    kp_tp = KpTopicPartition(name, 0)

    def spec(s):
        return kp_admin.list_partition_offsets({kp_tp: s})[kp_tp].offset

    seen = {"value": None, "since": 0.0}

    def settled():
        now = time.monotonic()
        value = (spec(KpOffsetSpec.EARLIEST_LOCAL), spec(KpOffsetSpec.LATEST_TIERED))
        if value != seen["value"]:
            seen["value"], seen["since"] = value, now
        local_start, tiered = value
        stable = now - seen["since"] >= STABLE_SECONDS
        return value if local_start > 0 and local_start == tiered + 1 and stable else None

    local_start, last_tiered = wait_until(settled, timeout=45, interval=0.3,
                                          what="(earliest-local, latest-tiered) adjacent and unchanged")
    # The active segment holds at most segment.bytes; everything before it is remote.
    assert last_tiered >= N // 2, f"only offsets up to {last_tiered} of {N} are tiered"
    assert local_start < N
    assert spec(KpOffsetSpec.EARLIEST) == 0
    assert spec(KpOffsetSpec.LATEST) == N

    tp = TopicPartition(name, 0)

    def list_offset(s):
        return admin.list_offsets({tp: s}, request_timeout=TIMEOUT)[tp].result(TIMEOUT)

    assert list_offset(OffsetSpec.earliest()).offset == 0, "earliest is the start of the whole log"
    assert list_offset(OffsetSpec.latest()).offset == N
    probe = tiered_consumer(bootstrap)
    try:
        assert probe.get_watermark_offsets(tp, timeout=10, cached=False) == (0, N)
    finally:
        probe.close()

    # Everything, from offset 0, byte-identical and in order: most of it from the remote tier.
    got = read_from(bootstrap, name, 0, N, timeout=40)
    for i, msg in enumerate(got):
        key, value, headers = records[i]
        assert msg.offset() == i, (i, msg.offset())
        assert msg.key() == key, f"key of offset {i}"
        assert msg.value() == value, f"value of offset {i}"
        assert msg.headers() == headers, (i, msg.headers())
        assert msg.timestamp() == (1, timestamps[i]), (i, msg.timestamp())  # CreateTime
    extra = read_from(bootstrap, name, N - 1, 1, timeout=10)
    assert extra[0].offset() == N - 1

    # From the middle of a remote batch with small fetches: the first read starts inside a batch,
    # the following ones return one whole batch each (larger than the limits, KIP-74).
    mid = last_tiered // 2 + 1
    part = read_from(bootstrap, name, mid, 300, timeout=30, **{
        "max.partition.fetch.bytes": 2048, "fetch.max.bytes": 4096, "message.max.bytes": 4096})
    assert [m.offset() for m in part] == list(range(mid, mid + 300))
    assert [m.key() for m in part] == [r[0] for r in records[mid:mid + 300]]
    assert [m.value() for m in part] == [r[1] for r in records[mid:mid + 300]]

    # Timestamps that fall into the remote range resolve to exact offsets.
    k = last_tiered // 3 + 1
    consumer = tiered_consumer(bootstrap)
    try:
        def lookup(ts):
            return consumer.offsets_for_times([TopicPartition(name, 0, ts)], timeout=10)[0].offset

        assert lookup(timestamps[k]) == k
        assert lookup(timestamps[k] + 1) == k + 1
        assert lookup(base_ts - 60_000) == 0
        assert lookup(timestamps[last_tiered]) == last_tiered  # the last remote record
        assert lookup(timestamps[last_tiered] + 1) == last_tiered + 1  # the first local one
        assert lookup(timestamps[N - 1]) == N - 1
        assert lookup(timestamps[N - 1] + 1) == -1  # after every record
    finally:
        consumer.close()
    found = list_offset(OffsetSpec.for_timestamp(timestamps[k] - 3))
    assert (found.offset, found.timestamp) == (k, timestamps[k])

    # The objects in the bucket: one copy of each sealed segment, named by its base offset,
    # covering offsets 0..last_tiered with no gap.
    s3 = s3_target()
    if s3 is None:
        print("REMOTE_TIER_URL/REMOTE_TIER_ENDPOINT not set: bucket contents not checked")
    else:
        client, bucket, prefix = s3
        cluster_id = admin.describe_cluster(request_timeout=TIMEOUT).result(TIMEOUT).cluster_id
        seg_prefix = "/".join(p for p in (prefix, cluster_id, f"{name}-{topic_uuid(admin, name)}", "0") if p) + "/"

        def listing():
            segments = {}
            for key in list_keys(client, bucket, seg_prefix):
                m = OBJECT_NAME.match(key[len(seg_prefix):])
                assert m, f"unexpected object {key}"
                segments.setdefault((int(m.group(1)), m.group(2)), set()).add(m.group(3))
            bases = [b for b, _ in segments]
            # A copy interrupted by a transient error leaves objects the next pass deletes.
            return (segments,) if len(bases) == len(set(bases)) else None

        [segments] = wait_until(listing, timeout=15, what=f"one copy per segment under s3://{bucket}/{seg_prefix}")
        assert len(segments) >= 2, f"{len(segments)} segment(s) in the bucket"
        for (base, sid), exts in segments.items():
            assert {"log", "index", "timeindex"} <= exts, (base, sid, exts)
        # Every segment was rolled with live idempotent-producer state; the broker copies the
        # producer snapshot only "when present" locally, so a missing one is reported, not failed.
        no_snapshot = sorted(base for (base, _), exts in segments.items() if "snapshot" not in exts)
        if no_snapshot:
            warnings.warn(f"{len(no_snapshot)} of {len(segments)} remote segments have no producer "
                          f"snapshot object (base offsets {no_snapshot[:10]}...)")
        expected = 0
        for base, sid in sorted(segments):
            assert base == expected, f"segment at {base}, expected one at {expected}"
            key = f"{seg_prefix}{base:020}-{sid}.log"
            data = client.get_object(Bucket=bucket, Key=key)["Body"].read()
            assert len(data) <= SEGMENT_BYTES or len(batch_spans(data)) == 1, f"{key}: {len(data)} bytes"
            for first, last in batch_spans(data):
                assert first == expected, f"{key}: batch at {first}, expected {expected}"
                expected = last + 1
        assert expected == last_tiered + 1, f"the bucket holds offsets up to {expected - 1}, latest-tiered is {last_tiered}"

        # Deleting the topic deletes its remote segments too.
        admin.delete_topics([name], operation_timeout=TIMEOUT, request_timeout=TIMEOUT)[name].result(timeout=TIMEOUT)
        wait_until(lambda: not list_keys(client, bucket, seg_prefix), timeout=20,
                   what=f"the objects under s3://{bucket}/{seg_prefix} to be deleted with the topic")
    print(f"tiered round trip: {last_tiered + 1} of {N} records remote, {time.monotonic() - started:.1f}s")
