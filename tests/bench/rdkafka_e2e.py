#!/usr/bin/env python3
"""End-to-end latency at a fixed rate with librdkafka (benchmark scenario W3, librdkafka client).

    rdkafka_e2e.py BOOTSTRAP TOPIC RATE SECONDS RECORD_SIZE WARMUP_SECONDS

The same measurement as E2eLatency.java with a cheaper client: this process produces to
partition 0 of TOPIC at RATE records per second (record i due at start + i / RATE and sent as soon
as it is due; acks=all, librdkafka's defaults otherwise), and a second process (this script with
--consume, started first) has partition 0 assigned at its end offset (no consumer group) and reads
everything back. Every record carries CLOCK_MONOTONIC in microseconds at its produce() call in its
first 8 bytes (big-endian); the consumer records now - that time when the record arrives. Both
processes read the same system-wide clock. Records of the first WARMUP_SECONDS are left out of
the percentiles.

Why a second W3 tool: E2eLatency runs a Java producer and a Java consumer of 40 MB/s each in one
JVM on the load generator's one core, which keeps that core busy; its p99 then measures queueing in
the client about as much as the broker.

Prints one JSON line in E2eLatency's form: sent, received, measured, send_errors, rate, p50_ms,
p99_ms, p999_ms, max_ms (microsecond resolution). Exit status 1 unless every record came back and
none failed.
"""
import json
import math
import os
import subprocess
import sys
import time

from confluent_kafka import Consumer, TopicPartition

from rdkafka_produce import bench_producer  # same directory: the same client settings


def now_us():
    return time.monotonic_ns() // 1000


def pct(sorted_values, q):
    """E2eLatency's percentile: the value at rank ceil(q * n)."""
    if not sorted_values:
        return -1.0
    i = min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))
    return sorted_values[i] / 1000.0


def consume(bootstrap, topic, total, warm, deadline_s):
    """The consumer process: prints "ready" once positioned, then one JSON line."""
    c = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": "w3-e2e-rdkafka",  # never joined: the partition is assigned
        "enable.auto.commit": False,
        "enable.partition.eof": False,
    })
    tp = TopicPartition(topic, 0)
    _, start = c.get_watermark_offsets(tp, timeout=30)
    c.assign([TopicPartition(topic, 0, start)])
    c.poll(0.2)  # connect and start fetching before the producer starts
    print("ready", start, flush=True)
    lat = []
    received = errors = 0
    first = start + warm
    deadline = time.monotonic() + deadline_s
    while received < total and time.monotonic() < deadline:
        # What has arrived, without waiting (consume() with a timeout waits for a full batch);
        # when nothing has, wait for the next record.
        batch = c.consume(num_messages=10_000, timeout=0)
        if not batch:
            m = c.poll(0.1)
            batch = [] if m is None else [m]
        for m in batch:
            if m.error() is not None:
                errors += 1
                continue
            now = now_us()
            received += 1
            if m.offset() >= first:
                lat.append(now - int.from_bytes(m.value()[:8], "big"))
    c.close()
    lat.sort()
    print(json.dumps({"received": received, "consume_errors": errors, "measured": len(lat),
                      "p50_ms": pct(lat, 0.50), "p99_ms": pct(lat, 0.99),
                      "p999_ms": pct(lat, 0.999), "max_ms": lat[-1] / 1000.0 if lat else -1.0}),
          flush=True)


def main():
    if len(sys.argv) == 7 and sys.argv[1] == "--consume":
        _, _, bootstrap, topic, total, warm, deadline = sys.argv
        consume(bootstrap, topic, int(total), int(warm), float(deadline))
        return 0
    if len(sys.argv) != 7:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    bootstrap, topic = sys.argv[1], sys.argv[2]
    rate, seconds = float(sys.argv[3]), float(sys.argv[4])
    size, warmup = int(sys.argv[5]), float(sys.argv[6])
    total = math.ceil(rate * seconds)
    warm = math.ceil(rate * warmup)

    child = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--consume", bootstrap, topic,
                              str(total), str(warm), str(seconds + 30)],
                             stdout=subprocess.PIPE, text=True)
    ready = child.stdout.readline()
    if not ready.startswith("ready"):
        child.kill()
        print(f"the consumer did not start: {ready!r}", file=sys.stderr)
        return 1

    filler = os.urandom(max(size, 8))[8:]
    state = {"err": 0}

    def on_delivery(err, _msg):
        if err is not None:
            state["err"] += 1

    p = bench_producer(bootstrap, "all")
    p.list_topics(topic, timeout=30)
    produce, poll = p.produce, p.poll
    t0 = time.perf_counter()
    sent = 0
    while sent < total:
        due = min(total, int((time.perf_counter() - t0) * rate) + 1)
        while sent < due:
            v = now_us().to_bytes(8, "big") + filler
            try:
                produce(topic, v, partition=0, on_delivery=on_delivery)
                sent += 1
            except BufferError:
                poll(0.001)
        poll(0)
        if sent < total and int((time.perf_counter() - t0) * rate) + 1 <= sent:
            time.sleep(0.0002)
    p.flush(60)
    out, _ = child.communicate(timeout=seconds + 60)
    lines = [l for l in out.splitlines() if l.startswith("{")]
    r = json.loads(lines[-1]) if lines else {"received": 0, "measured": 0}
    r.update(sent=sent, send_errors=state["err"], rate=rate)
    print(json.dumps(r), flush=True)
    return 0 if r["received"] == total and state["err"] == 0 and child.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
