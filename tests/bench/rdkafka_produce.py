#!/usr/bin/env python3
"""librdkafka produce throughput (benchmark scenario W1, librdkafka client).

    rdkafka_produce.py BOOTSTRAP TOPIC RECORDS RECORD_SIZE [--acks all] [--timeout 300]
                       [--payload-file FILE] [--partition 0]

Produces RECORDS records of RECORD_SIZE random bytes as fast as librdkafka accepts them
(confluent-kafka with librdkafka's defaults except acks), waits for every delivery report and
prints one JSON line: records, bytes, seconds, records_per_s, mb_per_s (MB = 10^6 bytes), errors,
start_epoch and end_epoch (wall clock of the first produce() and of the last delivery report).
Time runs from the first produce() to the last delivery report. Exit status 1 on any delivery
error or when the time limit is reached.

--payload-file: the records are the file's lines (without the newline), in order, starting again
at the first line after the last one, so record i is line i mod lines; RECORD_SIZE is ignored.
--partition: the partition of every record (default 0); -1 leaves it to librdkafka's partitioner.
"""
import argparse
import json
import os
import sys
import time

from confluent_kafka import KafkaException, Producer


def bench_producer(bootstrap, acks):
    """The benchmarks' librdkafka producer: librdkafka's defaults except acks, with a local queue
    large enough that the client never blocks the load loop."""
    return Producer({
        "bootstrap.servers": bootstrap,
        "acks": acks,
        "queue.buffering.max.messages": 1_000_000,
        "queue.buffering.max.kbytes": 1_048_576,
    })


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bootstrap")
    ap.add_argument("topic")
    ap.add_argument("records", type=int)
    ap.add_argument("size", type=int)
    ap.add_argument("--acks", default="all")
    ap.add_argument("--timeout", type=float, default=300.0)
    ap.add_argument("--payload-file")
    ap.add_argument("--partition", type=int, default=0)
    a = ap.parse_args()

    state = {"ok": 0, "err": 0, "first_err": None}

    def on_delivery(err, _msg):
        if err is None:
            state["ok"] += 1
        else:
            state["err"] += 1
            state["first_err"] = state["first_err"] or str(err)

    p = bench_producer(a.bootstrap, a.acks)
    # Connect and learn the partition leader before the clock starts.
    p.list_topics(a.topic, timeout=30)
    if a.payload_file:
        with open(a.payload_file, "rb") as f:
            payloads = [l.rstrip(b"\n") for l in f if l.strip()]
    else:
        payloads = [os.urandom(a.size)]
    n_payloads = len(payloads)
    partition = a.partition  # -1 is confluent-kafka's "unassigned": the partitioner decides
    produce = p.produce
    deadline = time.monotonic() + a.timeout
    start_epoch = time.time()
    t0 = time.monotonic()
    sent = 0
    if n_payloads == 1:
        # The W1 loop: one payload, nothing else per record.
        payload = payloads[0]
        while sent < a.records:
            try:
                produce(a.topic, payload, partition=partition, on_delivery=on_delivery)
                sent += 1
                if sent & 1023 == 0:
                    p.poll(0)
                    if time.monotonic() > deadline:
                        break
            except BufferError:
                p.poll(0.001)
            except KafkaException as e:
                state["err"] += 1
                state["first_err"] = state["first_err"] or str(e)
                break
    else:
        while sent < a.records:
            try:
                produce(a.topic, payloads[sent % n_payloads], partition=partition, on_delivery=on_delivery)
                sent += 1
                if sent & 1023 == 0:
                    p.poll(0)
                    if time.monotonic() > deadline:
                        break
            except BufferError:
                p.poll(0.001)
            except KafkaException as e:
                state["err"] += 1
                state["first_err"] = state["first_err"] or str(e)
                break
    while state["ok"] + state["err"] < sent and time.monotonic() < deadline:
        p.poll(0.05)
    elapsed = time.monotonic() - t0
    ok = state["ok"]
    lens = [len(x) for x in payloads]
    nbytes = (sent // n_payloads) * sum(lens) + sum(lens[:sent % n_payloads])
    size = nbytes / sent if sent else 0  # mean record size
    out = {
        "records": ok,
        "bytes": round(ok * size),
        "seconds": round(elapsed, 4),
        "records_per_s": round(ok / elapsed, 1) if elapsed > 0 else 0.0,
        "mb_per_s": round(ok * size / elapsed / 1e6, 3) if elapsed > 0 else 0.0,
        "errors": state["err"],
        "first_error": state["first_err"],
        "start_epoch": round(start_epoch, 3),
        "end_epoch": round(start_epoch + elapsed, 3),
    }
    print(json.dumps(out), flush=True)
    return 0 if ok == a.records and state["err"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
