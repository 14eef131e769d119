#!/usr/bin/env python3
"""The `search` scenario of the benchmark (issue 7, chronik only): `SCENARIOS=search tests/bench/run.sh`.

Imported by bench.py (run() calls run_search(), render() calls render_lines()); it uses bench.py's
helpers (brokers, ProducerPerformance, LocalStack, /proc) and adds what search needs: the admin
HTTP API (`/topics/{t}/_search`, `/_search/status`, `/metrics`) and the generated text records.
See docs/performance.md, "Search (issue 7)", for what every step measures. Steps, in order, on one
broker with the remote tier on LocalStack (as W5):

  index      target 1 (a)+(b): ProducerPerformance, acks=all, unthrottled, SEARCH_PRODUCE_RECORDS
             text records of 200-500 B (log lines and JSON objects, one per line of a payload
             file), to a topic without search, then to one with search.enabled=true; indexing
             throughput = records / (first record's timestamp -> `_search/status` shows lag 0 on
             every partition, polled every 50 ms); SEARCH_INDEX_ROUNDS rounds, ratio of medians.
             The indexer runs on the broker's core; with the broker pinned, its idle-class
             threads may also use the load core while it is far behind ([search] spill_cpus,
             SEARCH_SPILL_CPUS; index_cpus: SEARCH_INDEX_CPUS)
  latency    target 1 (c): the same tool at a fixed rate (SEARCH_RATE, default half of the
             no-search rate) for SEARCH_LAT_SECONDS, without and with search, each on an idle broker: p50/p99
  freshness  target 3: SEARCH_FRESH_RECORDS single records with a unique token at
             SEARCH_FRESH_RATE/s, acks=all; time from the ack until a match query finds it
             (polled every 10 ms)
  remote     target 2: SEARCH_RECORDS records of ~100 B (librdkafka, the lines of a payload file
             in order) to a topic with search and remote storage (local.retention.bytes=1); once
             every partition has lag 0 and no local split, every query of QUERIES runs once on a
             cold broker (restarted with an empty cache directory, page caches dropped) and
             SEARCH_WARM_RUNS times warm; latency, GETs and bytes received from the object store
             (the broker's /metrics)
"""
import json
import math
import os
import random
import re
import shutil
import statistics
import subprocess
import threading
import time
import urllib.error
import urllib.request

import bench as B
from bench import env_float, env_int, log

SEARCH = {
    "steps": os.environ.get("SEARCH_STEPS", "index,latency,freshness,remote").replace(" ", ",").split(","),
    "records": env_int("SEARCH_RECORDS", 10_000_000),              # target 2: records of ~100 B
    "segment_bytes": env_int("SEARCH_SEGMENT_BYTES", 0),           # 0: auto (see segment_bytes())
    "produce_records": env_int("SEARCH_PRODUCE_RECORDS", 1_000_000),  # target 1 (a)/(b)
    "index_rounds": env_int("SEARCH_INDEX_ROUNDS", 3),                # target 1 (a)/(b), medians
    # [search] index_cpus of the broker (default: its own core(s)) and spill_cpus (default:
    # the load generator's core when pinned; "" never spills)
    "index_cpus": os.environ.get("SEARCH_INDEX_CPUS"),
    "spill_cpus": os.environ.get("SEARCH_SPILL_CPUS"),
    "partitions": env_int("SEARCH_PARTITIONS", 1),
    "lat_tool": os.environ.get("SEARCH_LAT_TOOL", "rdkafka"),         # or producer-perf
    "lat_seconds": env_float("SEARCH_LAT_SECONDS", 20),            # target 1 (c)
    "lat_warmup_seconds": env_float("SEARCH_LAT_WARMUP", 3),
    "rate": env_int("SEARCH_RATE", 0),                              # 0: half the no-search rate
    "warm_runs": env_int("SEARCH_WARM_RUNS", 5),
    "fresh_records": env_int("SEARCH_FRESH_RECORDS", 200),          # target 3
    "fresh_rate": env_float("SEARCH_FRESH_RATE", 20),
    "index_timeout": env_int("SEARCH_INDEX_TIMEOUT", 1800),         # s: lag 0 / uploads / produce
    "query_timeout": env_float("SEARCH_QUERY_TIMEOUT", 60),         # s: one HTTP request
    "drop_caches": env_int("SEARCH_DROP_CACHES", 1),                # cold = also drop page caches
    "stall_timeout": env_int("SEARCH_STALL_TIMEOUT", 120),          # s without indexing progress
    # extra broker settings, "CHRONIK_X=1 CHRONIK_Y=2" (the runner passes no CHRONIK_* otherwise)
    "broker_env": os.environ.get("SEARCH_BROKER_ENV", ""),
}
SEARCH["steps"] = [s for s in SEARCH["steps"] if s]
LINES = 10_000            # distinct lines of each payload file
RARE_LINE = 4242          # the one small line with the token "zebracorn"
STATUS_POLL_S = 0.05
LAT_POLL_S = 1.0  # the lag during the latency runs
FRESH_POLL_S = 0.01


def segment_bytes():
    """SEARCH_SEGMENT_BYTES, or 64 MiB, smaller for small runs so there are ~16 segments (at
    least 1 MiB, Kafka's minimum)."""
    if SEARCH["segment_bytes"]:
        return SEARCH["segment_bytes"]
    est = SEARCH["records"] * 115 // max(1, SEARCH["partitions"])  # ~100 B value + batch overhead
    return int(min(64 << 20, max(1 << 20, est // 16)))


# --- records -------------------------------------------------------------------------------------

SERVICES = ["cart", "payments", "auth", "search", "shipping", "inventory", "gateway", "billing"]
MESSAGES = ["timeout talking to db", "connection reset by peer", "payment declined by issuer",
            "disk full on volume", "cache miss for key", "user logged in", "order created",
            "item added to cart", "token refreshed", "rate limit exceeded", "shipment label printed",
            "stock level updated"]
CODES = [200, 200, 200, 201, 204, 302, 400, 404, 409, 500, 502, 503]
WORDS = ("request handled upstream retry backoff replica shard leader follower commit offset batch "
         "session cookie header tenant region zone checkout invoice refund voucher basket latency "
         "queue worker thread pool socket buffer flush compaction snapshot checksum").split()
COUNTRIES = ["de", "fr", "us", "gb", "nl", "se", "pl", "es", "it", "jp"]


def level(r):
    x = r.random()
    return "fatal" if x < 0.01 else "error" if x < 0.10 else "warn" if x < 0.30 else "info"


def text_lines(seed=7):
    """Target 1's records: 200-500 B, every other one a log line, the others JSON objects."""
    r = random.Random(seed)
    out = []
    for i in range(LINES):
        want = r.randint(200, 500)
        lvl, svc, code = level(r), r.choice(SERVICES), r.choice(CODES)
        msg, ts = r.choice(MESSAGES), f"2026-11-27T17:{r.randint(0, 59):02d}:{r.randint(0, 59):02d}.{r.randint(0, 999):03d}Z"
        if i % 2 == 0:
            line = (f"{ts} {lvl.upper()} [{svc}] req={r.getrandbits(32):08x} user=u{r.randint(0, 99999)} "
                    f"{r.choice(['GET', 'POST', 'PUT', 'DELETE'])} /api/{svc}/{r.randint(1, 99999)} {code} "
                    f"{r.randint(1, 2000)}ms {msg}")
            while len(line) < want:
                line += " " + r.choice(WORDS) + ("=" + str(r.randint(0, 9999)) if r.random() < 0.3 else "")
            out.append(line[:want].rstrip())
        else:
            obj = {"ts": ts, "level": lvl, "service": svc, "trace_id": f"{r.getrandbits(64):016x}",
                   "http": {"method": r.choice(["GET", "POST"]), "path": f"/api/{svc}/{r.randint(1, 99999)}",
                            "status": code, "latency_ms": r.randint(1, 2000)},
                   "customer": {"id": r.randint(1, 10**6), "country": r.choice(COUNTRIES)},
                   "order": {"id": r.randint(1, 10**7), "amount": round(r.uniform(1, 1000), 2), "currency": "EUR"},
                   "message": msg, "tags": []}
            line = json.dumps(obj, separators=(",", ":"))
            while len(line) < want - 10:
                obj["tags"].append(r.choice(WORDS))
                line = json.dumps(obj, separators=(",", ":"))
            out.append(line)
    return out


def small_lines(seed=11):
    """Target 2's records: ~100 B, every other one a log line, the others JSON objects, with
    known tokens: lvl (info/warn/error/fatal), svc, code, msg; "zebracorn" on one line only."""
    r = random.Random(seed)
    out = []
    for i in range(LINES):
        lvl, svc, code, msg = level(r), r.choice(SERVICES), r.choice(CODES), r.choice(MESSAGES)
        if i == RARE_LINE:
            msg += " zebracorn"
        user, req = f"u{r.randint(0, 99999)}", f"{r.getrandbits(32):08x}"
        if i % 2 == 0:
            out.append(f"2026-11-27T17:{r.randint(0, 59):02d}:{r.randint(0, 59):02d}Z {lvl.upper()} {svc} "
                       f"req={req} user={user} code={code} {msg}")
        else:
            out.append(json.dumps({"lvl": lvl, "svc": svc, "code": code, "user": user, "req": req, "msg": msg},
                                  separators=(",", ":")))
    return out


def write_lines(path, lines):
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return statistics.mean(len(l.encode()) for l in lines)


def tokens(s):
    """The indexer's tokenizer on ASCII text: runs of letters and digits, lower-cased."""
    return re.findall(r"[a-z0-9]+", s.lower())


def has_phrase(toks, phrase):
    p = tokens(phrase)
    return any(toks[i:i + len(p)] == p for i in range(len(toks) - len(p) + 1))


def as_json(line):
    return json.loads(line) if line.startswith("{") else None


def queries(window, partitions, records):
    """The target-2 queries: (name, body, predicate on a line or None when the count is not
    known in advance). `window` = (first, last) record timestamp in ms."""
    lo, hi = window
    span = max(1, hi - lo)
    mid = lo + span // 2
    per_part = records // max(1, partitions)
    off = per_part // 2
    return [
        ("match common token", {"query": {"match": {"value": "timeout"}}},
         lambda l: "timeout" in tokens(l)),
        ("match rare token", {"query": {"match": {"value": "zebracorn"}}},
         lambda l: "zebracorn" in tokens(l)),
        ("match_phrase", {"query": {"match_phrase": {"value": "connection reset by peer"}}},
         lambda l: has_phrase(tokens(l), "connection reset by peer")),
        ("term on json path", {"query": {"term": {"json.svc": "payments"}}},
         lambda l: (as_json(l) or {}).get("svc") == "payments"),
        ("range on json path", {"query": {"range": {"json.code": {"gte": 500}}}},
         lambda l: (as_json(l) or {}).get("code", 0) >= 500),
        ("query_string", {"query": {"query_string": {"query": "json.lvl:error AND json.svc:auth"}}},
         lambda l: (as_json(l) or {}).get("lvl") == "error" and as_json(l).get("svc") == "auth"),
        ("bool", {"query": {"bool": {"must": [{"match": {"value": "declined"}}],
                                     "filter": [{"term": {"json.lvl": "warn"}}],
                                     "must_not": [{"range": {"json.code": {"gte": 500}}}]}}},
         lambda l: "declined" in tokens(l) and (as_json(l) or {}).get("lvl") == "warn"
         and as_json(l).get("code", 0) < 500),
        ("time window 1%", {"query": {"match_all": {}}, "time": {"from": mid, "to": mid + span // 100}},
         None),
        ("errors in 10% window, newest first", {"query": {"match": {"value": "error"}},
                                                "time": {"from": mid, "to": mid + span // 10},
                                                "sort": [{"timestamp": "desc"}]}, None),
        ("latest 10 (sort timestamp desc)", {"query": {"match_all": {}}, "sort": [{"timestamp": "desc"}],
                                             "size": 10}, lambda l: True),
        ("range on offset", {"query": {"range": {"offset": {"gte": off, "lt": off + 1000}}}},
         (lambda l: True) if partitions == 1 else None),
    ]


def expected_total(lines, records, pred, name):
    """How many of `records` records (record i = line i mod len(lines)) match pred."""
    if pred is None:
        return None
    if name == "range on offset":
        return 1000
    n = len(lines)
    full, rest = divmod(records, n)
    return sum(full + (1 if j < rest else 0) for j, l in enumerate(lines) if pred(l))


# --- the admin HTTP API --------------------------------------------------------------------------

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never a proxy


def http_json(method, url, body=None, timeout=30):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"} if data else {})
    try:
        with _OPENER.open(req, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw)
        except ValueError:
            return e.code, {"error": raw[:500].decode(errors="replace")}


class Api:
    def __init__(self, http_port):
        self.base = f"http://127.0.0.1:{http_port}"

    def status(self, topic):
        """Sums over the partitions of `_search/status`; None when it did not answer."""
        try:
            code, st = http_json("GET", f"{self.base}/topics/{topic}/_search/status", timeout=10)
        except OSError:
            return None
        if code != 200 or not st or not st.get("partitions"):
            return None
        ps = st["partitions"]
        return {"hw": sum(p["high_watermark"] for p in ps), "lag": sum(p["lag"] for p in ps),
                "max_lag": max(p["lag"] for p in ps), "lag0": all(p["lag"] == 0 for p in ps),
                "local_splits": sum(p["local_splits"] for p in ps),
                "remote_splits": sum(p["remote_splits"] for p in ps), "partitions": len(ps),
                "unread": sum(p.get("unread", 0) for p in ps)}

    def search(self, topic, body, timeout=None):
        """(client-side ms, HTTP status, answer)."""
        t0 = time.perf_counter()
        code, resp = http_json("POST", f"{self.base}/topics/{topic}/_search", body,
                               timeout=timeout or SEARCH["query_timeout"])
        return (time.perf_counter() - t0) * 1000.0, code, resp

    def metrics(self):
        """The object store, cache, tiering and search counters of /metrics: {"name{k=v,..}": value}."""
        try:
            with _OPENER.open(f"{self.base}/metrics", timeout=10) as r:
                text = r.read().decode()
        except OSError:
            return {}
        out = {}
        for name, labels, v in re.findall(r"^(chronik_[a-z_]+)(?:\{([^}]*)\})? (\S+)$", text, re.M):
            if name.startswith(("chronik_object_store_", "chronik_cache_counter", "chronik_search_counter",
                                "chronik_tiering_counter")):
                lab = ",".join(sorted(f"{k}={x}" for k, x in re.findall(r'(\w+)="([^"]*)"', labels)))
                out[f"{name}{{{lab}}}"] = float(v)
        return out


def metric_delta(m0, m1):
    return {k: m1[k] - m0.get(k, 0.0) for k in m1 if m1[k] - m0.get(k, 0.0)}


GETS = "chronik_object_store_requests_total{operation=get}"
GET_BYTES = "chronik_object_store_bytes_total{direction=received,operation=get}"


def store_use(d):
    """GETs, bytes received by GETs, and any other object store operation, from a metric delta."""
    other = {k.split("{", 1)[1].rstrip("}"): int(v) for k, v in d.items()
             if k.startswith("chronik_object_store_requests_total") and k != GETS}
    return {"gets": int(d.get(GETS, 0)), "get_bytes": int(d.get(GET_BYTES, 0)), "other_requests": other,
            "remote_splits_opened": int(d.get("chronik_search_counter{what=remote_splits_opened}", 0))}


class Stalled(RuntimeError):
    pass


def wait_status(api, topic, pred, timeout, samples=None, stop=None, interval=STATUS_POLL_S):
    """Polls `_search/status` every `interval` s until pred(status) (returns (epoch, status)),
    `timeout` s pass or `stop` is set (returns (None, last status)). Appends
    (epoch, hw, lag, local_splits, remote_splits, unread) to samples. Raises Stalled when records wait
    (lag > 0) but the searchable offsets have not moved for SEARCH_STALL_TIMEOUT s."""
    deadline = time.monotonic() + timeout
    last, searchable, moved = None, None, time.monotonic()
    while time.monotonic() < deadline and not (stop and stop.is_set()):
        st = api.status(topic)
        t = time.time()
        if st:
            last = st
            if samples is not None:
                samples.append((round(t, 3), st["hw"], st["lag"], st["local_splits"], st["remote_splits"],
                                st["unread"]))
            if pred(st):
                return t, st
            if st["hw"] - st["lag"] != searchable or st["lag"] == 0:
                searchable, moved = st["hw"] - st["lag"], time.monotonic()
            elif time.monotonic() - moved > SEARCH["stall_timeout"]:
                d = api.metrics()
                raise Stalled(f"indexing of {topic} stalled: searchable offsets {searchable:,} of {st['hw']:,} "
                              f"unchanged for {SEARCH['stall_timeout']} s (index_errors "
                              f"{d.get('chronik_search_counter{what=index_errors}')}, records_indexed "
                              f"{d.get('chronik_search_counter{what=records_indexed}')}; see the broker log)")
        time.sleep(interval)
    return None, last


def timeline(samples, t0, every=1.0, limit=400):
    """Samples thinned to one per `every` s (seconds since t0, hw, lag, local, remote splits, unread)."""
    out, nxt = [], None
    for s in samples:
        if nxt is None or s[0] >= nxt:
            out.append([round(s[0] - t0, 2)] + list(s[1:]))
            nxt = s[0] + every
    if samples and out and out[-1][0] != round(samples[-1][0] - t0, 2):
        out.append([round(samples[-1][0] - t0, 2)] + list(samples[-1][1:]))
    if len(out) > limit:
        step = math.ceil(len(out) / limit)
        out = out[::step] + [out[-1]]
    return out


def watcher(api, topic, pred, timeout, interval=STATUS_POLL_S):
    """wait_status in a thread: returns (thread, result dict with samples, done_epoch, last)."""
    res = {"samples": [], "done_epoch": None, "last": None, "stop": threading.Event(), "error": None}

    def run():
        try:
            res["done_epoch"], res["last"] = wait_status(api, topic, pred, timeout, res["samples"], res["stop"],
                                                         interval)
        except Exception as e:  # noqa: BLE001 - raised by the caller
            res["error"] = e
    th = threading.Thread(target=run, daemon=True)
    th.start()
    return th, res


def first_timestamp_ms(port, topic, partitions, timeout=20):
    """The smallest timestamp of the records at offset 0 of every partition (a consumer, no group)."""
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": f"127.0.0.1:{port}", "group.id": "search-bench-probe",
                  "enable.auto.commit": False})
    try:
        c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        seen = {}
        deadline = time.monotonic() + timeout
        while len(seen) < partitions and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None or m.error():
                continue
            seen.setdefault(m.partition(), m.timestamp()[1])
            c.pause([TopicPartition(topic, m.partition())])
        if not seen:
            raise RuntimeError(f"no record read from {topic}")
        return min(seen.values())
    finally:
        c.close()


def pct(vals, q):
    """Nearest-rank percentile."""
    if not vals:
        return None
    s = sorted(vals)
    return s[max(0, math.ceil(q / 100.0 * len(s)) - 1)]


def r1(x, nd=1):
    return None if x is None else round(x, nd)


# --- steps ---------------------------------------------------------------------------------------

def index_round(br, api, work, add, i, text_file, text_bytes):
    """One round of target 1 (a)+(b): the no-search produce, then the same with search until lag 0."""
    s = SEARCH
    n, parts = s["produce_records"], s["partitions"]
    warm = int(n * B.CONFIG["w1_warmup_fraction"])
    settle(br)
    off_topic, topic = f"search-off-{i}", f"search-on-{i}"
    B.create_topic(br.port, off_topic, parts)
    log(f"search: round {i + 1}: produce {n:,} text records (~{text_bytes:.0f} B) without search (ProducerPerformance)")
    off = B.measured(br, lambda: B.producer_perf(br, work, off_topic, n, -1, warmup=warm,
                                                 payload_file=text_file, payload_bytes=text_bytes))
    add("chronik", "search_produce_off", off)
    backlog = index_backlog(br, api, off_topic, n)
    settle(br)
    B.create_topic(br.port, topic, parts, {"search.enabled": "true"})
    log(f"search: round {i + 1}: produce {n:,} text records with search.enabled=true; status every 50 ms until lag 0")
    res = {}

    def run():
        th, w = watcher(api, topic, lambda st: st["lag0"] and st["hw"] >= n, s["index_timeout"])
        try:
            r = B.producer_perf(br, work, topic, n, -1, warmup=warm, payload_file=text_file,
                                payload_bytes=text_bytes)
            r["produce_end_epoch"] = time.time()
            th.join(s["index_timeout"])
        finally:
            w["stop"].set()
        res.update(w)
        return r
    on = B.measured(br, run)  # broker CPU over produce + indexing until lag 0
    add("chronik", "search_produce_on", on)
    if res["error"]:
        raise res["error"]
    if res["done_epoch"] is None:
        raise RuntimeError(f"search: {topic} not indexed after {s['index_timeout']} s: {res['last']}")
    t_first = first_timestamp_ms(br.port, topic, parts) / 1000.0
    secs = res["done_epoch"] - t_first
    lags = [x[2] for x in res["samples"]]
    idx = {"records": n, "first_record_epoch": t_first, "lag0_epoch": round(res["done_epoch"], 3),
           "seconds": round(secs, 3), "records_per_s": round(n / secs, 1),
           "mb_per_s": round(n * text_bytes / secs / 1e6, 2),
           "lag0_after_produce_end_s": round(res["done_epoch"] - on["produce_end_epoch"], 3),
           "max_lag": max(lags) if lags else None,
           "lag_timeline": timeline(res["samples"], t_first)}
    idx["round_ratio"] = round(idx["records_per_s"] / off["all_records_per_s"], 3)
    log(f"search: round {i + 1}: indexing {idx['records_per_s']:,.0f} records/s in {secs:.1f} s "
        f"(no-search produce {off['all_records_per_s']:,.0f}/s, ratio {idx['round_ratio']}); "
        f"max lag {idx['max_lag']}, lag 0 {idx['lag0_after_produce_end_s']} s after the produce ended")
    return {"off": off, "on": on, "indexing": idx, "backlog": backlog}


def enable_search(port, topic):
    """search.enabled=true on an existing topic, as an operator would: IncrementalAlterConfigs."""
    from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource
    a = AdminClient({"bootstrap.servers": f"127.0.0.1:{port}"})
    res = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[
        ConfigEntry("search.enabled", "true", incremental_operation=AlterConfigOpType.SET)])
    for fut in a.incremental_alter_configs([res]).values():
        fut.result(60)


def index_backlog(br, api, topic, n):
    """The indexer's own rate, with no load generator beside it: search is switched on for the
    topic the no-search run just filled, and the time runs from that call until all n records
    are searchable. (Beside ProducerPerformance, which keeps a core busy, the indexer has about
    one core until the produce ends; this is what it does with the machine to itself.)"""
    settle(br)
    t0 = time.time()
    enable_search(br.port, topic)
    samples = []
    done, last = wait_status(api, topic, lambda st: st["lag0"] and st["hw"] >= n, SEARCH["index_timeout"],
                             samples)
    if done is None:
        raise RuntimeError(f"search: the backlog of {topic} was not indexed after {SEARCH['index_timeout']} s: {last}")
    secs = done - t0
    out = {"records": n, "seconds": round(secs, 3), "records_per_s": round(n / secs, 1),
           "lag_timeline": timeline(samples, t0)}
    log(f"search: backlog of {n:,} records indexed in {secs:.1f} s ({out['records_per_s']:,.0f} records/s)")
    return out


def step_index(br, api, work, add, out, text_file, text_bytes):
    """Target 1 (a)+(b), SEARCH_INDEX_ROUNDS rounds: the ratio is the median indexing rate over the
    median no-search produce rate (the one-core Java producer's rate moves by a fifth between
    runs); the table shows the round whose indexing rate is the median. Both rates count every
    record from the first one: the produce rate is ProducerPerformance's whole-run figure
    (`all_records_per_s`), as the indexing rate includes the producer's warm-up too; the ratio to
    its steady rate after the warm-up (`records_per_s`) is reported beside it."""
    rounds = [index_round(br, api, work, add, i, text_file, text_bytes)
              for i in range(max(1, SEARCH["index_rounds"]))]
    out["index_rounds"] = rounds

    def median_run(key, val):
        ordered = sorted(rounds, key=lambda r: val(r[key]))
        return ordered[(len(ordered) - 1) // 2]
    out["produce_off"] = median_run("off", lambda r: r["all_records_per_s"])["off"]
    mid = median_run("indexing", lambda r: r["records_per_s"])
    out["produce_on"] = mid["on"]
    idx = dict(mid["indexing"])
    idx["rounds"] = len(rounds)
    idx["round_rates"] = [round(r["indexing"]["records_per_s"]) for r in rounds]
    idx["round_produce_off_rates"] = [round(r["off"]["all_records_per_s"]) for r in rounds]
    idx["ratio_to_produce_off"] = round(idx["records_per_s"] / out["produce_off"]["all_records_per_s"], 3)
    steady = sorted(r["off"]["records_per_s"] for r in rounds)[(len(rounds) - 1) // 2]
    idx["ratio_to_produce_off_steady"] = round(idx["records_per_s"] / steady, 3)
    backlog = sorted(r["backlog"]["records_per_s"] for r in rounds)[(len(rounds) - 1) // 2]
    idx["backlog_records_per_s"] = backlog
    idx["backlog_rates"] = [round(r["backlog"]["records_per_s"]) for r in rounds]
    idx["backlog_ratio_to_produce_off"] = round(backlog / out["produce_off"]["all_records_per_s"], 3)
    out["indexing"] = idx
    log(f"search: indexing median {idx['records_per_s']:,.0f} records/s over {len(rounds)} rounds "
        f"{idx['round_rates']}; no-search produce median {out['produce_off']['all_records_per_s']:,.0f}/s "
        f"{idx['round_produce_off_rates']}; ratio {idx['ratio_to_produce_off']} "
        f"({idx['ratio_to_produce_off_steady']} to the steady rate after the warm-up); a backlog with "
        f"no producer beside it: {backlog:,.0f} records/s {idx['backlog_rates']}, ratio "
        f"{idx['backlog_ratio_to_produce_off']}")


def settle(br, limit_s=180, idle_share=0.05):
    """Waits (at most limit_s) until the broker uses under idle_share of a core over one second:
    the index of an earlier step may still be merging, and a latency run must not measure that.
    Writes the dirty page cache out first (sync): the earlier steps leave hundreds of MB of log
    and index files for the kernel to write back, which stalls appends for a while.
    Returns the seconds waited."""
    t0 = time.monotonic()
    os.sync()
    while time.monotonic() - t0 < limit_s:
        c0 = B.cpu_seconds(br.pid)
        time.sleep(1.0)
        if B.cpu_seconds(br.pid) - c0 < idle_share:
            break
    return round(time.monotonic() - t0, 1)


def rdkafka_latency(br, work, topic, rate, text_file):
    """One fixed-rate librdkafka run (rdkafka_latency.py on the load core): per-record latency
    from produce() to the delivery report, in microseconds."""
    s = SEARCH
    py = os.path.join(B.CACHE, "venv", "bin", "python")
    timeout = int(s["lat_seconds"]) + 120
    cmd = B.on_core(B.LOAD_CPU, [py, os.path.join(B.HERE, "rdkafka_latency.py"), f"127.0.0.1:{br.port}",
                                 topic, str(rate), str(s["lat_seconds"]), "--payload-file", text_file,
                                 "--warmup", str(s["lat_warmup_seconds"])])
    rc, text, cpu, wall = B.run_load(cmd, os.path.join(work, f"{topic}.out"), timeout=timeout)
    jl = [l for l in text.splitlines() if l.startswith("{")]
    if rc != 0 or not jl:
        raise RuntimeError(f"rdkafka_latency failed (rc {rc}):\n{text[-1500:]}")
    r = json.loads(jl[-1])
    r.update(tool="rdkafka_latency.py", load_cpu_s=round(cpu, 3), load_wall_s=round(wall, 3))
    return r


def step_latency(br, api, work, add, out, text_file, text_bytes):
    """Target 1 (c): ProducerPerformance at a fixed rate, without and with search."""
    s = SEARCH
    rate = s["rate"] or int((out.get("produce_off") or {}).get("records_per_s", 40000) / 2)
    total, warm = int(rate * s["lat_seconds"]), int(rate * s["lat_warmup_seconds"])
    lat = {"rate": rate, "seconds": s["lat_seconds"], "warmup_seconds": s["lat_warmup_seconds"]}
    out["latency"] = lat
    for key, cfg in (("off", {}), ("on", {"search.enabled": "true"})):
        topic = f"search-lat-{key}"
        B.create_topic(br.port, topic, s["partitions"], cfg)
        log(f"search: produce latency at {rate:,} records/s for {s['lat_seconds']} s, search {key}")
        waited = settle(br)
        # The lag is sampled once a second, in both runs alike: the runner shares the load
        # generator's core, and polling every 50 ms there (as the index step does) added a
        # millisecond to the client's p99 in the run that had it.
        th, w = watcher(api, topic, lambda st: False, s["lat_seconds"] * 3 + 120, interval=LAT_POLL_S)
        try:
            if s["lat_tool"] == "producer-perf":
                r = B.measured(br, lambda: B.producer_perf(br, work, topic, total, rate, warmup=warm,
                                                           payload_file=text_file, payload_bytes=text_bytes))
            else:
                r = B.measured(br, lambda: rdkafka_latency(br, work, topic, rate, text_file))
        finally:
            w["stop"].set()
            th.join(10)
        if key == "on":
            t_end = time.time()
            lags = [x[2] for x in w["samples"]]
            r["max_lag"] = max(lags) if lags else None
            r["max_unread"] = max((x[5] for x in w["samples"]), default=None)
            done, last = wait_status(api, topic, lambda st: st["lag0"] and st["hw"] >= total, s["index_timeout"])
            r["lag0_after_produce_end_s"] = round(done - t_end, 3) if done else None
            r["lag_timeline"] = timeline(w["samples"], w["samples"][0][0] if w["samples"] else t_end)
        r["settle_s"] = waited
        add("chronik", f"search_latency_{key}", r)
        lat[key] = r
    if lat["off"]["p99_ms"]:
        lat["p99_ratio"] = round(lat["on"]["p99_ms"] / lat["off"]["p99_ms"], 3)
    if lat["off"]["p50_ms"]:
        lat["p50_ratio"] = round(lat["on"]["p50_ms"] / lat["off"]["p50_ms"], 3)
    log(f"search: latency p50/p99 off {lat['off']['p50_ms']}/{lat['off']['p99_ms']} ms, "
        f"on {lat['on']['p50_ms']}/{lat['on']['p99_ms']} ms")


def step_freshness(br, api, out):
    """Target 3: ack -> visible in search, one record at a time at SEARCH_FRESH_RATE/s."""
    from confluent_kafka import Producer
    s = SEARCH
    topic, n, rate = "search-fresh", s["fresh_records"], s["fresh_rate"]
    B.create_topic(br.port, topic, s["partitions"], {"search.enabled": "true"})
    p = Producer({"bootstrap.servers": f"127.0.0.1:{br.port}", "acks": "all", "linger.ms": 0})
    p.list_topics(topic, timeout=30)
    tokens_ = [f"fresh{i:04d}x{os.urandom(4).hex()}" for i in range(n)]
    acked, errors, lock, produced = {}, [], threading.Lock(), threading.Event()
    log(f"search: freshness, {n} records at {rate}/s, search polled every {FRESH_POLL_S * 1000:.0f} ms")

    def produce():
        t0 = time.monotonic()
        for i, tok in enumerate(tokens_):
            due = t0 + i / rate
            while time.monotonic() < due:
                p.poll(min(0.001, max(0.0, due - time.monotonic())))

            def cb(err, _msg, tok=tok):
                t = time.monotonic()
                if err is not None:
                    errors.append(str(err))
                else:
                    with lock:
                        acked[tok] = t
            p.produce(topic, f"freshness probe {tok}".encode(), on_delivery=cb)
            p.poll(0)
        end = time.monotonic() + 30
        while len(p) > 0 and time.monotonic() < end:
            p.poll(0.001)
        produced.set()

    th = threading.Thread(target=produce, daemon=True)
    visible, hits_per_tok, qms, bad = {}, {}, [], []
    deadline = time.monotonic() + n / rate + 60
    th.start()
    while time.monotonic() < deadline:
        tq = time.monotonic()
        with lock:
            pending = [t for t in acked if t not in visible]
            settled = produced.is_set() and len(acked) + len(errors) >= n
        if not pending and settled:
            break
        if pending:
            ms, code, resp = api.search(topic, {"query": {"match": {"value": " ".join(pending)}},
                                                "size": len(pending)}, timeout=10)
            t_resp = time.monotonic()
            qms.append(ms)
            if code != 200:
                bad.append(code)
            else:
                for h in resp.get("hits", []):
                    tok = (h.get("value") or "").rsplit(" ", 1)[-1]
                    if tok in acked and tok not in visible:
                        visible[tok] = t_resp
                        hits_per_tok[tok] = 1
                    elif tok in hits_per_tok and tok in pending:
                        hits_per_tok[tok] += 1
        time.sleep(max(0.0, tq + FRESH_POLL_S - time.monotonic()))
    th.join(5)
    lat = [(visible[t] - acked[t]) * 1000.0 for t in visible]
    f = {"records": n, "rate": rate, "acked": len(acked), "produce_errors": len(errors),
         "visible": len(visible), "not_visible": len(acked) - len(visible),
         "duplicates": sum(1 for v in hits_per_tok.values() if v > 1),
         "p50_ms": r1(pct(lat, 50)), "p99_ms": r1(pct(lat, 99)), "max_ms": r1(max(lat) if lat else None),
         "min_ms": r1(min(lat) if lat else None), "mean_ms": r1(statistics.mean(lat) if lat else None),
         "polls": len(qms), "poll_query_p50_ms": r1(pct(qms, 50), 2), "poll_errors": len(bad),
         "commit_interval_ms": 500}
    out["freshness"] = f
    log(f"search: freshness p50 {f['p50_ms']} ms, p99 {f['p99_ms']} ms, max {f['max_ms']} ms "
        f"({f['visible']}/{n} visible, {f['polls']} polls)")


def step_remote(br, api, ls, work, add, out, cold_restart):
    """Target 2: queries over SEARCH_RECORDS records in remote splits, cold and warm."""
    s = SEARCH
    n, parts, seg = s["records"], s["partitions"], segment_bytes()
    small = os.path.join(work, "search-small.txt")
    lines = small_lines()
    small_bytes = write_lines(small, lines)
    topic = "search-remote"
    B.create_topic(br.port, topic, parts, {"search.enabled": "true", "remote.storage.enable": "true",
                                           "local.retention.bytes": "1", "retention.ms": "-1",
                                           "segment.bytes": str(seg)})
    rem = {"topic": topic, "records": n, "record_mean_bytes": round(small_bytes, 1), "segment_bytes": seg}
    out["remote"] = rem
    log(f"search: producing {n:,} records of ~{small_bytes:.0f} B to {topic} (librdkafka, {seg >> 10} KiB segments)")
    py = os.path.join(B.CACHE, "venv", "bin", "python")
    th, w = watcher(api, topic, lambda st: st["lag0"] and st["hw"] >= n and st["local_splits"] == 0
                    and st["remote_splits"] > 0, s["index_timeout"])

    def on_sample_lag0():
        for x in w["samples"]:
            if x[1] >= n and x[2] == 0:
                return x[0]
        return None
    try:
        timeout = max(B.CONFIG["load_timeout"], int(n / 20000))
        cmd = B.on_core(B.LOAD_CPU, [py, os.path.join(B.HERE, "rdkafka_produce.py"), f"127.0.0.1:{br.port}",
                                     topic, str(n), "0", "--payload-file", small, "--partition", "-1",
                                     "--timeout", str(timeout)])
        rc, text, cpu, wall = B.run_load(cmd, os.path.join(work, f"{topic}.out"), timeout=timeout + 30)
        jl = [l for l in text.splitlines() if l.startswith("{")]
        if rc != 0 or not jl:
            raise RuntimeError(f"rdkafka_produce failed (rc {rc}):\n{text[-1500:]}")
        prod = json.loads(jl[-1])
        prod.update(load_cpu_s=round(cpu, 3), load_wall_s=round(wall, 3))
        rem["produce"] = prod
        log(f"search: produced in {prod['seconds']:.1f} s ({prod['records_per_s']:,.0f} records/s); "
            f"waiting for lag 0 and no local split")
        th.join(s["index_timeout"])
    finally:
        w["stop"].set()
    t0 = prod["start_epoch"]
    lag0 = on_sample_lag0()
    rem["lag0_after_start_s"] = round(lag0 - t0, 1) if lag0 else None
    rem["index_records_per_s"] = round(n / (lag0 - t0), 1) if lag0 else None
    rem["max_lag"] = max((x[2] for x in w["samples"]), default=None)
    rem["lag_timeline"] = timeline(w["samples"], t0, every=5.0)
    if w["error"]:
        raise w["error"]
    if w["done_epoch"] is None:
        raise RuntimeError(f"search: {topic} not indexed and tiered after {s['index_timeout']} s: {w['last']}")
    rem["all_remote_after_start_s"] = round(w["done_epoch"] - t0, 1)
    rem["remote_splits"] = w["last"]["remote_splits"]
    log(f"search: lag 0 after {rem['lag0_after_start_s']} s, every split remote after "
        f"{rem['all_remote_after_start_s']} s ({rem['remote_splits']} remote splits)")

    window = (int(prod["start_epoch"] * 1000), int(prod["end_epoch"] * 1000))
    qs = queries(window, parts, n)
    res = []
    rem["queries"] = res
    for name, body, pred in qs:
        exp = expected_total(lines, n, pred, name)
        cold_restart()
        done, st = wait_status(api, topic, lambda st: st["lag0"] and st["local_splits"] == 0
                               and st["remote_splits"] > 0, 120)
        if done is None:
            raise RuntimeError(f"search: status not ready after a restart: {st}")
        m0, mk = api.metrics(), ls.mark()
        ms, code, resp = api.search(topic, body)
        m1 = api.metrics()
        q = {"name": name, "body": body, "expected_total": exp, "http_status": code,
             "total": resp.get("total") if code == 200 else None,
             "cold": {"ms": round(ms, 2), "took_ms": resp.get("took_ms"), "splits": resp.get("splits"),
                      **store_use(metric_delta(m0, m1)),
                      "localstack_gets": ls.ops_since(mk).get("GetObject", 0)}}
        if code != 200:
            q["error"] = resp
        warm, took = [], []
        for _ in range(s["warm_runs"]):
            wms, wcode, wresp = api.search(topic, body)
            warm.append(round(wms, 2))
            took.append(wresp.get("took_ms") if wcode == 200 else None)
            if wcode != 200:
                q.setdefault("warm_errors", []).append(wcode)
        m2 = api.metrics()
        q["warm_ms"], q["warm_took_ms"] = warm, took
        q["warm"] = store_use(metric_delta(m1, m2))
        q["hits"] = len(resp.get("hits", [])) if code == 200 else None
        res.append(q)
        flag = "" if exp is None or q["total"] == exp else f"  (expected {exp})"
        log(f"  {name}: total {q['total']}{flag}; cold {ms:.0f} ms, {q['cold']['gets']} GETs, "
            f"{q['cold']['get_bytes'] / 1e6:.2f} MB; warm p50 {statistics.median(warm) if warm else '-'} ms")

    cold = [q["cold"]["ms"] for q in res if q["http_status"] == 200]
    warm = [x for q in res for x in q["warm_ms"]]
    cb = [q["cold"]["get_bytes"] for q in res]
    cg = [q["cold"]["gets"] for q in res]
    rem["summary"] = {
        "queries": len(res), "failed": sum(1 for q in res if q["http_status"] != 200),
        "wrong_totals": [q["name"] for q in res if q["expected_total"] is not None and q["total"] != q["expected_total"]],
        "cold_p50_ms": r1(statistics.median(cold) if cold else None),
        "cold_p99_ms": r1(pct(cold, 99)), "cold_max_ms": r1(max(cold) if cold else None),
        "warm_p50_ms": r1(statistics.median(warm) if warm else None, 2),
        "warm_p99_ms": r1(pct(warm, 99), 2), "warm_max_ms": r1(max(warm) if warm else None, 2),
        "cold_get_bytes_median": int(statistics.median(cb)) if cb else None,
        "cold_get_bytes_max": max(cb) if cb else None,
        "cold_gets_median": statistics.median(cg) if cg else None, "cold_gets_max": max(cg) if cg else None,
        "warm_gets_total": sum(q["warm"]["gets"] for q in res)}
    log("search: queries " + json.dumps(rem["summary"]))


# --- the scenario --------------------------------------------------------------------------------

def run_search(work, add, out):
    """The search scenario; fills `out` (doc["search"]) step by step."""
    s = SEARCH
    unknown = set(s["steps"]) - {"index", "latency", "freshness", "remote"}
    if unknown:
        raise RuntimeError(f"unknown SEARCH_STEPS {sorted(unknown)}")
    out["config"] = dict(s, segment_bytes=segment_bytes(), lines_per_payload_file=LINES)
    http_port = B.CONFIG["port"] + 31
    binary = B.Chronik(0, work).bin
    if not B.broker_has_http(binary):
        raise RuntimeError(f"{binary} has no admin HTTP port (--http-listen): no search API")
    api = Api(http_port)
    ls = B.LocalStack(B.W5["s3_port"])
    ls.start()
    prefix = f"bench-search-{os.urandom(4).hex()}"
    out.update(endpoint=ls.endpoint, prefix=prefix, localstack_started_here=ls.started,
               http=f"127.0.0.1:{http_port}")
    data = os.path.join(work, "chronik", "data")
    cache_dir = os.path.join(data, "cache")
    env = B.remote_tier_env(ls, prefix, http_port, B.W5["memory_bytes"], B.W5["disk_bytes"])
    if s["spill_cpus"] is None and B.PIN:
        # The indexer runs on the broker's core; far behind the log, its idle-class threads may
        # also use what the load generator leaves of its core (docs/performance.md, "Search").
        s["spill_cpus"] = B.LOAD_CPU
    out["config"]["index_cpus"] = s["index_cpus"]
    out["config"]["spill_cpus"] = s["spill_cpus"]
    if s["index_cpus"]:
        env["CHRONIK_SEARCH_INDEX_CPUS"] = f"[{s['index_cpus']}]"
    if s["spill_cpus"]:
        env["CHRONIK_SEARCH_SPILL_CPUS"] = f"[{s['spill_cpus']}]"
    extra = dict(kv.split("=", 1) for kv in s["broker_env"].split())
    if extra:
        log(f"search: extra broker settings (SEARCH_BROKER_ENV) {extra}")
    br = B.make_broker("chronik", work, env | extra)
    drop = bool(s["drop_caches"]) and B.can_drop_caches()
    out["cold_drops_page_caches"] = drop

    def cold_restart():
        """Clean stop, empty cache directory (page caches dropped), start again."""
        br.stop()
        shutil.rmtree(cache_dir, ignore_errors=True)
        if drop:
            B.drop_caches()
        else:
            subprocess.run(["sync"])
        br.start()

    t_start = time.monotonic()
    try:
        br.start()
        text_file = os.path.join(work, "search-text.txt")
        text_bytes = write_lines(text_file, text_lines())
        out["text_records"] = {"lines": LINES, "mean_bytes": round(text_bytes, 1), "file": text_file}
        if "index" in s["steps"]:
            step_index(br, api, work, add, out, text_file, text_bytes)
        if "latency" in s["steps"]:
            step_latency(br, api, work, add, out, text_file, text_bytes)
        if "freshness" in s["steps"]:
            step_freshness(br, api, out)
        if "remote" in s["steps"]:
            step_remote(br, api, ls, work, add, out, cold_restart)
        return out
    finally:
        out["targets"] = targets(out)  # also after a failure: the steps that finished
        out["seconds"] = round(time.monotonic() - t_start, 1)
        B.finish_remote_step(br, ls, work, ["search-remote"], f"search ({prefix})")


def targets(out):
    t = {}
    idx, lat, rem, f = out.get("indexing"), out.get("latency"), out.get("remote"), out.get("freshness")
    if idx:
        t["indexing_vs_produce_off"] = {"value": idx["ratio_to_produce_off"], "target": ">= 0.5",
                                        "met": idx["ratio_to_produce_off"] >= 0.5}
    if lat and lat.get("p99_ratio") is not None:
        t["produce_p99_on_vs_off"] = {"value": lat["p99_ratio"], "target": "<= 1.2", "met": lat["p99_ratio"] <= 1.2}
    sm = (rem or {}).get("summary")
    if sm:
        t["warm_query_p50_ms"] = {"value": sm["warm_p50_ms"], "target": "<= 50",
                                  "met": sm["warm_p50_ms"] is not None and sm["warm_p50_ms"] <= 50}
        t["cold_query_p50_ms"] = {"value": sm["cold_p50_ms"], "target": "<= 1000",
                                  "met": sm["cold_p50_ms"] is not None and sm["cold_p50_ms"] <= 1000}
        t["records_in_remote_splits"] = {"value": rem["records"], "target": ">= 10,000,000",
                                         "met": rem["records"] >= 10_000_000}
        t["correct_totals"] = {"value": f"{sm['queries'] - len(sm['wrong_totals']) - sm['failed']}/{sm['queries']}",
                               "target": "all", "met": not sm["wrong_totals"] and not sm["failed"]}
    if f:
        t["freshness_p99_ms"] = {"value": f["p99_ms"], "target": "reported (commit_interval_ms 500)", "met": None}
    return t


# --- the table -----------------------------------------------------------------------------------

def _n(x, nd=0):
    if x is None:
        return "-"
    return f"{x:,.{nd}f}"


def render_lines(d):
    L = []
    if d.get("error"):
        L.append(f"search failed: {d['error']}")
    cfg = d.get("config", {})
    L.append(f"Search (issue 7) — chronik; remote tier on LocalStack {d.get('endpoint')}; "
             f"{cfg.get('partitions', 1)} partition(s) per topic; scenario {d.get('seconds', '-')} s")
    if cfg.get("broker_env"):
        L.append(f"extra broker settings (SEARCH_BROKER_ENV): {cfg['broker_env']}")
    rows = []
    off, on, idx = d.get("produce_off"), d.get("produce_on"), d.get("indexing")
    tr = d.get("text_records", {})
    tg = d.get("targets", {})

    def met(key):
        m = tg.get(key, {}).get("met")
        return "-" if m is None else ("yes" if m else "NO")
    if off and on:
        rows.append((f"produce, no search: records/s whole run / steady (MB/s) [{off['records']:,} x ~{tr.get('mean_bytes', 0):.0f} B]",
                     f"{_n(off.get('all_records_per_s'))} / {_n(off['records_per_s'])} ({off['mb_per_s']})", "", ""))
        rows.append(("produce, search.enabled: records/s (MB/s)", f"{_n(on['records_per_s'])} ({on['mb_per_s']})", "", ""))
        rows.append(("broker CPU s/GB, no search / search (to lag 0)",
                     f"{off.get('broker_cpu_s_per_gb')} / {on.get('broker_cpu_s_per_gb')}", "", ""))
    if idx:
        steady = idx.get("ratio_to_produce_off_steady")
        rows.append(("indexing: records/s, first produce -> lag 0 (ratio to no-search produce; to its steady rate)",
                     f"{_n(idx['records_per_s'])} ({idx['ratio_to_produce_off']:.2f}"
                     + (f"; {steady:.2f})" if steady is not None else ")"), ">= 0.50",
                     met("indexing_vs_produce_off")))
        if idx.get("rounds", 1) > 1:
            rows.append((f"indexing / no-search produce records/s of each of {idx['rounds']} rounds (medians above)",
                         ", ".join(f"{a:,} / {b:,}" for a, b in zip(idx["round_rates"], idx["round_produce_off_rates"])),
                         "", ""))
        rows.append(("indexing: max lag (records); lag 0 after the produce ended (s)",
                     f"{_n(idx['max_lag'])}; {idx['lag0_after_produce_end_s']}", "", ""))
        if idx.get("backlog_records_per_s") is not None:
            rows.append(("indexing a backlog, no producer beside it: records/s (ratio to no-search produce)",
                         f"{_n(idx['backlog_records_per_s'])} ({idx['backlog_ratio_to_produce_off']:.2f})", "", ""))
    lat = d.get("latency")
    if lat and lat.get("on"):
        rows.append((f"produce latency at {lat['rate']:,}/s p50 / p99 ms, no search",
                     f"{lat['off']['p50_ms']:.0f} / {lat['off']['p99_ms']:.0f}", "", ""))
        rows.append((f"produce latency at {lat['rate']:,}/s p50 / p99 ms, search (p99 ratio)",
                     f"{lat['on']['p50_ms']:.0f} / {lat['on']['p99_ms']:.0f} ({lat.get('p99_ratio', 0):.2f})",
                     "<= 1.2", met("produce_p99_on_vs_off")))
    rem = d.get("remote")
    if rem and rem.get("summary"):
        sm = rem["summary"]
        rows.append((f"remote: {rem['records']:,} records of ~{rem['record_mean_bytes']:.0f} B, remote splits; "
                     f"indexed (lag 0) / all remote after (s)",
                     f"{rem['remote_splits']}; {rem['lag0_after_start_s']} / {rem['all_remote_after_start_s']}",
                     ">= 10M records", met("records_in_remote_splits")))
        rows.append((f"query p50 ms, warm ({sm['queries']} queries x {cfg.get('warm_runs')})",
                     f"{sm['warm_p50_ms']}", "<= 50", met("warm_query_p50_ms")))
        rows.append(("query p99 / max ms, warm", f"{sm['warm_p99_ms']} / {sm['warm_max_ms']}", "", ""))
        rows.append(("query p50 ms, cold (restart, empty cache)", f"{sm['cold_p50_ms']}", "<= 1000",
                     met("cold_query_p50_ms")))
        rows.append(("query p99 (= max) ms, cold", f"{sm['cold_p99_ms']}", "", ""))
        rows.append(("object store per cold query: GETs median / max",
                     f"{sm['cold_gets_median']} / {sm['cold_gets_max']}", "", ""))
        rows.append(("object store per cold query: MB received median / max",
                     f"{sm['cold_get_bytes_median'] / 1e6:.2f} / {sm['cold_get_bytes_max'] / 1e6:.2f}", "", ""))
        rows.append(("GETs of all warm runs", f"{sm['warm_gets_total']}", "", ""))
        rows.append(("query totals as expected", tg.get("correct_totals", {}).get("value", "-"), "all",
                     met("correct_totals")))
    f = d.get("freshness")
    if f:
        rows.append((f"freshness ack -> visible ms p50 / p99 / max ({f['visible']}/{f['records']} at {f['rate']:g}/s)",
                     f"{f['p50_ms']} / {f['p99_ms']} / {f['max_ms']}", "-", "-"))
    if rows:
        w = [max(len(r[i]) for r in rows + [("metric", "value", "target", "met")]) for i in range(4)]
        L.append("| " + " | ".join(h.ljust(w[i]) for i, h in enumerate(("metric", "value", "target", "met"))) + " |")
        L.append("|" + "|".join("-" * (x + 2) for x in w) + "|")
        for r in rows:
            L.append("| " + " | ".join(c.ljust(w[i]) for i, c in enumerate(r)) + " |")
    if rem and rem.get("queries"):
        L.append("")
        L.append("Queries over the remote splits (cold: first run after a restart with an empty cache; "
                 "MB = bytes received by GETs):")
        hdr = ("query", "total (expected)", "cold ms", "GETs", "MB", "splits opened", "warm p50 ms")
        body = []
        for q in rem["queries"]:
            c = q["cold"]
            tot = "error" if q["total"] is None else f"{q['total']:,}"
            if q["expected_total"] is not None and q["total"] != q["expected_total"]:
                tot += f" ({q['expected_total']:,}!)"
            body.append((q["name"], tot, f"{c['ms']:.1f}", str(c["gets"]), f"{c['get_bytes'] / 1e6:.2f}",
                         str(c["remote_splits_opened"]),
                         f"{statistics.median(q['warm_ms']):.1f}" if q["warm_ms"] else "-"))
        w = [max(len(r[i]) for r in body + [hdr]) for i in range(len(hdr))]
        L.append("| " + " | ".join(h.ljust(w[i]) for i, h in enumerate(hdr)) + " |")
        L.append("|" + "|".join("-" * (x + 2) for x in w) + "|")
        for r in body:
            L.append("| " + " | ".join(c.ljust(w[i]) for i, c in enumerate(r)) + " |")
    return L
