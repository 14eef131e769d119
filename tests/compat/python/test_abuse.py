"""Abuse on both ports, against a chronik process this test starts (CHRONIK_BIN_PATH):

* 10,000 idle Kafka connections and 5,000 idle HTTP connections: memory per connection stays
  small (at most 8 KiB on the Kafka port) and real clients keep producing, consuming and searching;
* a consumer that pipelines large fetches and never reads its socket;
* clients that announce a huge frame and then send one byte a second;
* oversized and deeply nested search requests: precise 4xx answers, the broker keeps serving.

ABUSE_CONNECTIONS (default 10000) and ABUSE_HTTP_CONNECTIONS (default 5000) set the counts.
"""
import json
import os
import resource
import signal
import socket
import struct
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from ports import free_port

KIB = 1024
CONNECTIONS = int(os.environ.get("ABUSE_CONNECTIONS", "10000"))
HTTP_CONNECTIONS = int(os.environ.get("ABUSE_HTTP_CONNECTIONS", "5000"))



def rss_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.fixture(scope="module")
def broker():
    assert os.environ.get("CHRONIK_BIN_PATH"), "set CHRONIK_BIN_PATH"
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = CONNECTIONS + HTTP_CONNECTIONS + 500
    assert hard >= need, f"the open-file limit {hard} is below the {need} this test needs"
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    work = Path(tempfile.mkdtemp(prefix="chronik-abuse-"))
    port, http = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHRONIK_")}
    env["CHRONIK_SEARCH_COMMIT_INTERVAL_MS"] = "200"
    log = open(work / "chronik.log", "ab")
    proc = subprocess.Popen(
        [os.environ["CHRONIK_BIN_PATH"], "serve", "--listen", f"127.0.0.1:{port}",
         "--http-listen", f"127.0.0.1:{http}", "--data-dir", str(work / "data")],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True)
    deadline = time.monotonic() + 30
    while True:
        assert proc.poll() is None, "chronik exited at start"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    b = type("B", (), {})()
    b.proc, b.port, b.http, b.work = proc, port, http, work
    b.bootstrap = f"127.0.0.1:{port}"
    yield b
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def roundtrip(bootstrap, topic, n=500, tag="r"):
    """Produces n records with acks=all and reads them back; returns seconds taken."""
    t0 = time.monotonic()
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                  "message.timeout.ms": 20000, "log_level": 2})
    acked = {}
    for i in range(n):
        p.produce(topic, f"{tag} record {i}".encode(),
                  on_delivery=lambda e, m: e is None and acked.__setitem__(m.offset(), m.value()))
    p.flush(30)
    assert len(acked) == n, f"{n - len(acked)} records not acknowledged"
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"abuse-{time.time()}", "log_level": 2})
    c.assign([TopicPartition(topic, 0, min(acked))])
    seen = {}
    deadline = time.monotonic() + 30
    while len(seen) < n and time.monotonic() < deadline:
        for m in c.consume(500, 1.0):
            if not m.error():
                seen[m.offset()] = m.value()
    c.close()
    assert all(seen.get(o) == v for o, v in acked.items()), "records read back differ"
    return time.monotonic() - t0


def http(broker, method, path, body=None, timeout=20):
    req = urllib.request.Request(f"http://127.0.0.1:{broker.http}{path}", data=body, method=method,
                                 headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def http_or_refused(broker, path, body):
    """POSTs a large body. A body over the size limit is answered 413 from its Content-Length,
    and the connection is closed without reading the rest: the client may then fail to send it
    (broken pipe, reset) before it reads the answer, which counts as that 413."""
    try:
        return http(broker, "POST", path, body)
    except urllib.error.URLError as e:
        assert isinstance(e.reason, (BrokenPipeError, ConnectionResetError)), e
        return 413, b""


def open_idle(port, n):
    socks = []
    for i in range(n):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", port))
        socks.append(s)
    return socks


def fetch_request(correlation, topic, max_bytes):
    """Fetch v4 with one partition from offset 0, encoded by hand."""
    client = b"abuser"
    t = topic.encode()
    body = struct.pack(">iiiib", -1, 500, 1, max_bytes, 0)
    body += struct.pack(">i", 1) + struct.pack(">h", len(t)) + t
    body += struct.pack(">i", 1) + struct.pack(">iqi", 0, 0, max_bytes)
    header = struct.pack(">hhi", 1, 4, correlation) + struct.pack(">h", len(client)) + client
    frame = header + body
    return struct.pack(">i", len(frame)) + frame


def test_idle_connections_cost_little_and_others_are_served(broker):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic("abuse", 1, 1), NewTopic("logs", 1, 1, config={"search.enabled": "true"})])
    time.sleep(1)
    base_s = roundtrip(broker.bootstrap, "abuse", tag="warm")
    before = rss_kib(broker.proc.pid)
    kafka = open_idle(broker.port, CONNECTIONS)
    time.sleep(3)
    after = rss_kib(broker.proc.pid)
    per_conn = (after - before) * KIB / CONNECTIONS
    print(f"\n{CONNECTIONS} idle Kafka connections: RSS {before} -> {after} KiB, {per_conn:.0f} B each")
    busy_s = roundtrip(broker.bootstrap, "abuse", tag="busy")
    print(f"round trip of 500 records: {base_s:.2f} s before, {busy_s:.2f} s with the idle connections")
    web = open_idle(broker.http, HTTP_CONNECTIONS)
    time.sleep(3)
    after_http = rss_kib(broker.proc.pid)
    per_http = (after_http - after) * KIB / HTTP_CONNECTIONS
    print(f"{HTTP_CONNECTIONS} idle HTTP connections: RSS {after} -> {after_http} KiB, {per_http:.0f} B each")
    status, _ = http(broker, "GET", "/health")
    assert status == 200
    roundtrip(broker.bootstrap, "abuse", tag="both")
    for s in kafka + web:
        s.close()
    assert per_conn <= 8 * KIB, f"an idle Kafka connection costs {per_conn:.0f} bytes"
    assert per_http <= 16 * KIB, f"an idle HTTP connection costs {per_http:.0f} bytes"


def test_a_consumer_that_never_reads_and_slow_senders(broker):
    # 20 MiB of data to fetch.
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 20, "log_level": 2})
    for i in range(20 * 1024):
        p.produce("abuse", os.urandom(1000))
        if i % 1000 == 0:
            p.poll(0)
    p.flush(30)
    before = rss_kib(broker.proc.pid)
    stuck = []
    for k in range(20):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", broker.port))
        s.setblocking(False)
        for i in range(50):
            try:
                s.send(fetch_request(i, "abuse", 16 << 20))
            except BlockingIOError:
                break
        stuck.append(s)
    # Announce 90 MiB frames and trickle bytes.
    slow = []
    for k in range(50):
        s = socket.create_connection(("127.0.0.1", broker.port))
        s.send(struct.pack(">i", 90 << 20))
        slow.append(s)
    t0 = time.monotonic()
    # A plain topic: the search indexer's own buffers would blur what the stuck clients cost.
    elapsed = roundtrip(broker.bootstrap, "abuse", n=300, tag="served")
    for second in range(5):
        for s in slow:
            s.send(b"\x00")
        time.sleep(1)
    after = rss_kib(broker.proc.pid)
    print(f"\nnever-reading fetchers and slow senders: RSS {before} -> {after} KiB; "
          f"a 300-record round trip took {elapsed:.2f} s meanwhile")
    assert after - before < 32 * KIB, f"memory grew by {after - before} KiB"
    roundtrip(broker.bootstrap, "logs", n=300, tag="served")
    status, body = http(broker, "POST", "/topics/logs/_search",
                        json.dumps({"query": {"match": {"value": "served"}}, "size": 1}).encode())
    assert status == 200, body
    for s in stuck + slow:
        s.close()
    assert broker.proc.poll() is None
    assert time.monotonic() - t0 < 60


def test_oversized_and_deeply_nested_search_requests(broker):
    # Make the records of the search topic searchable first.
    deadline = time.monotonic() + 30
    while True:
        status, body = http(broker, "POST", "/topics/logs/_search",
                            json.dumps({"query": {"match": {"value": "served"}}}).encode())
        if status == 200 and json.loads(body)["total"] > 0:
            break
        assert time.monotonic() < deadline, body
        time.sleep(0.5)
    before = rss_kib(broker.proc.pid)
    big = json.dumps({"query": {"match": {"value": "x" * (64 << 20)}}}).encode()
    status, _ = http_or_refused(broker, "/topics/logs/_search", big)
    assert status == 413, status
    deep = '{"query":' + '{"bool":{"must":[' * 100_000 + '{"match_all":{}}' + ']}}' * 100_000 + "}"
    status, body = http(broker, "POST", "/topics/logs/_search", deep.encode())
    assert status == 400, (status, body[:200])
    nested = "(" * 50_000 + "served" + ")" * 50_000
    status, body = http(broker, "POST", "/topics/logs/_search",
                        json.dumps({"query": {"query_string": {"query": nested}}}).encode())
    assert status == 400, (status, body[:200])
    status, body = http(broker, "GET", "/topics/logs/_search?q=" + "(" * 50_000)
    assert 400 <= status < 500, (status, body[:200])
    many = {"query": {"bool": {"should": [{"match": {"value": f"w{i}"}} for i in range(100_000)]}}}
    status, body = http_or_refused(broker, "/topics/logs/_search", json.dumps(many).encode())
    assert status in (200, 400, 413), (status, body[:200])
    after = rss_kib(broker.proc.pid)
    print(f"\nabusive search requests: RSS {before} -> {after} KiB")
    assert broker.proc.poll() is None, "the broker died"
    status, body = http(broker, "POST", "/topics/logs/_search",
                        json.dumps({"query": {"match": {"value": "served"}}}).encode())
    assert status == 200 and json.loads(body)["total"] > 0
    roundtrip(broker.bootstrap, "abuse", n=100, tag="after")


def test_open_files_grow_by_one_per_partition(broker):
    """5,000 partitions (each written to): about one open file each, not three per segment."""
    before = len(os.listdir(f"/proc/{broker.proc.pid}/fd"))
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic("wide", 5000, 1)])["wide"].result(timeout=120)
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 50, "log_level": 2})
    for part in range(5000):
        p.produce("wide", b"x" * 100, partition=part)
        if part % 500 == 0:
            p.poll(0)
    assert p.flush(60) == 0
    after = len(os.listdir(f"/proc/{broker.proc.pid}/fd"))
    per = (after - before) / 5000
    print(f"\n5,000 partitions: open files {before} -> {after} ({per:.2f} per partition)")
    assert per <= 1.1, f"{per:.2f} open files per partition"
    roundtrip(broker.bootstrap, "abuse", n=100, tag="wide")
