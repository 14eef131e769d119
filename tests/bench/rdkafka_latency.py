#!/usr/bin/env python3
"""Produce latency at a fixed rate with librdkafka (confluent-kafka).

    rdkafka_latency.py BOOTSTRAP TOPIC RATE SECONDS --payload-file FILE [--warmup 3] [--acks all]
                       [--partition 0]

Sends the lines of FILE (in order, starting again after the last) at RATE records per second for
SECONDS seconds: record i is due at start + i / RATE and is sent as soon as it is due, so a
stalled client or broker shows up as latency, not as a lower rate. The latency of a record is the
time from its produce() call to its delivery report (the loop polls for reports between sends,
about every 0.2 ms when it is ahead of schedule). Records sent in the first WARMUP seconds are
left out of the percentiles. Prints one JSON line: records, errors, seconds, records_per_s,
p50_ms, p95_ms, p99_ms, p999_ms, lat_max_ms, lat_avg_ms (floats, microsecond resolution),
measured (records in the percentiles). Exit status 1 on any delivery error.
"""
import argparse
import json
import sys
import time

from rdkafka_produce import bench_producer  # same directory: the same client settings


def percentile(sorted_values, q):
    if not sorted_values:
        return None
    i = min(len(sorted_values) - 1, max(0, int(round(q * (len(sorted_values) - 1)))))
    return sorted_values[i]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bootstrap")
    ap.add_argument("topic")
    ap.add_argument("rate", type=float)
    ap.add_argument("seconds", type=float)
    ap.add_argument("--payload-file", required=True)
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--acks", default="all")
    ap.add_argument("--partition", type=int, default=0)
    a = ap.parse_args()

    with open(a.payload_file, "rb") as f:
        payloads = [l.rstrip(b"\n") for l in f if l.strip()]
    n_payloads = len(payloads)
    total = int(a.rate * a.seconds)
    warm = int(a.rate * a.warmup)
    lat = []
    state = {"ok": 0, "err": 0, "first_err": None}
    clock = time.perf_counter

    def report(sent_at, i):
        def on_delivery(err, _msg):
            if err is not None:
                state["err"] += 1
                state["first_err"] = state["first_err"] or str(err)
                return
            state["ok"] += 1
            if i >= warm:
                lat.append(clock() - sent_at)
        return on_delivery

    p = bench_producer(a.bootstrap, a.acks)
    p.list_topics(a.topic, timeout=30)
    produce, poll = p.produce, p.poll
    t0 = clock()
    sent = 0
    while sent < total:
        due = min(total, int((clock() - t0) * a.rate) + 1)
        while sent < due:
            try:
                produce(a.topic, payloads[sent % n_payloads], partition=a.partition,
                        on_delivery=report(clock(), sent))
                sent += 1
            except BufferError:
                poll(0.001)
        poll(0)
        if sent < total and int((clock() - t0) * a.rate) + 1 <= sent:
            time.sleep(0.0002)
    deadline = clock() + 60
    while state["ok"] + state["err"] < sent and clock() < deadline:
        poll(0.01)
    elapsed = clock() - t0
    lat.sort()
    ms = lambda v: None if v is None else round(v * 1000, 3)  # noqa: E731
    out = {
        "records": state["ok"],
        "errors": state["err"],
        "first_error": state["first_err"],
        "seconds": round(elapsed, 3),
        "records_per_s": round(state["ok"] / elapsed, 1) if elapsed > 0 else 0.0,
        "measured": len(lat),
        "p50_ms": ms(percentile(lat, 0.50)),
        "p95_ms": ms(percentile(lat, 0.95)),
        "p99_ms": ms(percentile(lat, 0.99)),
        "p999_ms": ms(percentile(lat, 0.999)),
        "lat_max_ms": ms(lat[-1] if lat else None),
        "lat_avg_ms": ms(sum(lat) / len(lat)) if lat else None,
    }
    print(json.dumps(out), flush=True)
    return 0 if state["ok"] == total and state["err"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
