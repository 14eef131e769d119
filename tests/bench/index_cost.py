#!/usr/bin/env python3
"""What indexing costs, in broker CPU seconds: a broker alone on core 0, librdkafka producing the
search bench's text records (search_bench.text_lines) from core 1 to a search-enabled topic, and
the broker's CPU from the first record until `_search/status` shows them all searchable.

Run with the test venv's Python (it needs confluent-kafka), from anywhere:

    ~/.cache/chronik-tests/venv/bin/python tests/bench/index_cost.py

Settings (environment): BIN (the broker binary; default target/release/chronik under
CARGO_TARGET_DIR), N (600000 records), ROUNDS (2, a new topic each), BROKER_ENV ("K=V K=V",
extra environment of the broker), WORK (/var/tmp/chronik-index-cost; wiped), PORT (49500; the
HTTP port is PORT+2), PERF=1 (perf record of each round into WORK/perf<i>.data).
The broker's own search settings are its defaults: with it pinned to core 0, `index_cpus` is
core 0 and nothing spills.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench as B  # noqa: E402
import search_bench as S  # noqa: E402

N = int(os.environ.get("N", "600000"))
ROUNDS = int(os.environ.get("ROUNDS", "2"))
PORT = int(os.environ.get("PORT", "49500"))
WORK = os.environ.get("WORK", "/var/tmp/chronik-index-cost")
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(HERE, "..", "..", "target"))
BIN = os.environ.get("BIN", os.path.join(TARGET, "release", "chronik"))


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as stat:
        f = stat.read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def status(topic):
    url = f"http://127.0.0.1:{PORT + 2}/topics/{topic}/_search/status"
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return json.loads(r.read())
    except OSError:
        return None


def searchable(st, n):
    ps = (st or {}).get("partitions") or []
    return bool(ps) and sum(p["lag"] for p in ps) == 0 and sum(p["high_watermark"] for p in ps) >= n


def main():
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)
    lines = os.path.join(WORK, "lines.txt")
    S.write_lines(lines, S.text_lines())
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHRONIK_")}
    env["CHRONIK_HTTP_LISTEN"] = f"127.0.0.1:{PORT + 2}"
    for kv in os.environ.get("BROKER_ENV", "").split():
        k, v = kv.split("=", 1)
        env[k] = v
    log = open(os.path.join(WORK, "broker.log"), "w")
    broker = subprocess.Popen(["taskset", "-c", "0", BIN, "serve", "--listen", f"127.0.0.1:{PORT}",
                               "--data-dir", os.path.join(WORK, "data")],
                              env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            if broker.poll() is not None:
                raise SystemExit(f"the broker exited; see {WORK}/broker.log")
            try:
                socket.create_connection(("127.0.0.1", PORT), 1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("the broker did not listen within 30 s")
                time.sleep(0.1)
        for rnd in range(ROUNDS):
            topic = f"cost-{rnd}"
            B.create_topic(PORT, topic, 1, {"search.enabled": "true"})
            perf = None
            if os.environ.get("PERF") == "1":
                perf = subprocess.Popen(["taskset", "-c", "1", "perf", "record", "-F", "999", "-p", str(broker.pid),
                                         "-o", os.path.join(WORK, f"perf{rnd}.data")],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(0.5)
            c0, t0 = cpu_seconds(broker.pid), time.monotonic()
            subprocess.run(["taskset", "-c", "1", sys.executable, os.path.join(HERE, "rdkafka_produce.py"),
                            f"127.0.0.1:{PORT}", topic, str(N), "0", "--acks", "all", "--payload-file", lines,
                            "--partition", "0"], check=True, capture_output=True, text=True)
            t_prod, c_prod = time.monotonic() - t0, cpu_seconds(broker.pid) - c0
            deadline = time.monotonic() + 600
            while not searchable(status(topic), N):
                if time.monotonic() > deadline:
                    raise SystemExit(f"{topic}: not searchable after 600 s: {status(topic)}")
                time.sleep(0.05)
            t_all, c_all = time.monotonic() - t0, cpu_seconds(broker.pid) - c0
            if perf:
                perf.send_signal(2)
                perf.wait()
            print(f"round {rnd}: produce {t_prod:.2f} s ({N / t_prod:,.0f}/s, broker CPU {c_prod:.2f} s); "
                  f"searchable after {t_all:.2f} s; broker CPU {c_all:.2f} s", flush=True)
            time.sleep(3)
    finally:
        broker.terminate()
        broker.wait()


if __name__ == "__main__":
    main()
