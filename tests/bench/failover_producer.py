#!/usr/bin/env python3
"""A paced acks=all producer for the failover measurement of cluster_bench.py (issue 18).

    failover_producer.py BOOTSTRAP TOPIC RATE RECORD_SIZE OUTFILE [--seconds 120]

Produces RECORD_SIZE-byte records to partition 0 of TOPIC at RATE records per second
(confluent-kafka / librdkafka, librdkafka's defaults except acks=all, idempotence on so the
records keep their order across the leader change, and a bounded message.timeout.ms), and
appends one line per delivery report to OUTFILE, written as they arrive:

    SEQ SEND_NS ACK_NS OFFSET ERROR

SEND_NS is CLOCK_MONOTONIC (system-wide, so comparable with the runner's clock) at the
produce() call, ACK_NS at the delivery report, OFFSET -1 and ERROR the error's name on failure
(`-` when acknowledged). Stops after --seconds or on SIGTERM/SIGINT, then waits at most 10 s for
the outstanding deliveries and prints one JSON summary line.
"""
import argparse
import json
import os
import signal
import sys
import time

from confluent_kafka import KafkaException, Producer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bootstrap")
    ap.add_argument("topic")
    ap.add_argument("rate", type=float)
    ap.add_argument("size", type=int)
    ap.add_argument("outfile")
    ap.add_argument("--seconds", type=float, default=120.0)
    a = ap.parse_args()

    stop = {"now": False}

    def on_signal(_sig, _frame):
        stop["now"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    p = Producer({
        "bootstrap.servers": a.bootstrap,
        "acks": "all",
        "enable.idempotence": True,
        "message.timeout.ms": 60000,
    })
    out = open(a.outfile, "w", buffering=1)
    state = {"ok": 0, "err": 0, "first_err": None}
    payload = bytearray(os.urandom(a.size))

    def report(seq):
        def on_delivery(err, msg):
            now = time.monotonic_ns()
            if err is None:
                state["ok"] += 1
                out.write(f"{seq} {sends[seq]} {now} {msg.offset()} -\n")
            else:
                state["err"] += 1
                state["first_err"] = state["first_err"] or err.name()
                out.write(f"{seq} {sends[seq]} {now} -1 {err.name()}\n")
            sends.pop(seq, None)
        return on_delivery

    sends = {}
    p.list_topics(a.topic, timeout=30)
    interval = 1.0 / a.rate
    t0 = time.monotonic()
    deadline = t0 + a.seconds
    seq = 0
    next_t = t0
    while not stop["now"] and time.monotonic() < deadline:
        now = time.monotonic()
        if now < next_t:
            p.poll(min(next_t - now, 0.002))
            continue
        payload[0:8] = seq.to_bytes(8, "big")
        sends[seq] = time.monotonic_ns()
        try:
            p.produce(a.topic, bytes(payload), partition=0, on_delivery=report(seq))
        except BufferError:
            sends.pop(seq, None)
            p.poll(0.01)
            continue
        except KafkaException as e:
            sends.pop(seq, None)
            state["err"] += 1
            state["first_err"] = state["first_err"] or str(e)
            p.poll(0.01)
            continue
        seq += 1
        next_t += interval
        if next_t < now - 1.0:   # far behind (the client blocked): do not burst to catch up
            next_t = now
        p.poll(0)
    p.flush(10)
    out.close()
    print(json.dumps({"sent": seq, "acked": state["ok"], "errors": state["err"],
                      "first_error": state["first_err"], "unanswered": len(sends),
                      "seconds": round(time.monotonic() - t0, 3)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
