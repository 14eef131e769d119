"""Search (docs/search.md) through real clients: every answer checked against a brute force.

A seeded corpus (search_corpus.py: log lines, JSON objects with nested paths, UTF-8 / null /
binary keys, headers, binary values, explicit timestamps) goes into a 3-partition topic with
search.enabled=true through confluent-kafka producers, one per compression codec, each record
to an explicit partition; the delivery reports give every record's (partition, offset). Once
`GET /topics/{t}/_search/status` shows every partition searchable up to its high watermark,
each query of search_corpus.QUERY_NAMES is sent to `POST /topics/{t}/_search`, and its `total`,
its first page in offset order and every hit's key / value / headers / timestamp must equal
what a linear scan of the produced records says. Sorting (timestamp, offset, score), `from` and
`search_after` paging, the default page, binary / null / empty keys, values and headers in hits,
the `GET ?q=` form and the error answers are checked too, and a separate small topic checks that
`searchable_offset` is a promise while records are still being indexed.

The tiered part (marker `tiered`) does the same on a topic whose sealed segments move to the
remote tier (local.retention.bytes=1): once every partition's splits are all remote, every
query must still give exactly the brute-force answer. When REMOTE_TIER_URL / REMOTE_TIER_ENDPOINT
point at LocalStack's S3 (tests/run.sh sets them), the `.split` objects are looked for there.

Environment: BOOTSTRAP (Kafka), ADMIN_HTTP (host:port of the admin HTTP port, the search API),
SEARCH_CORPUS_RECORDS (default 300000), SEARCH_TIERED_RECORDS (default 60000),
SEARCH_INDEX_TIMEOUT (seconds to wait until searchable, default 120), SEARCH_TIER_TIMEOUT
(seconds to wait until the splits are remote, default 180). Skipped with TARGET=kafka.
"""
import functools
import json
import os
import random
import string
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

if os.environ.get("TARGET") == "kafka":
    pytest.skip("TARGET=kafka: Apache Kafka has no search API", allow_module_level=True)
ADMIN_HTTP = os.environ.get("ADMIN_HTTP", "")
if not ADMIN_HTTP:
    pytest.skip("ADMIN_HTTP is not set (host:port of the broker's admin HTTP port, which serves the "
                "search API)", allow_module_level=True)

from confluent_kafka.admin import AdminClient  # noqa: E402

import search_corpus as sc  # noqa: E402
from test_confluent import TIMEOUT, create_topic, new_producer  # noqa: E402
from test_confluent_tiered import list_keys, s3_target, topic_uuid  # noqa: E402

N_MAIN = int(os.environ.get("SEARCH_CORPUS_RECORDS", "300000"))
N_TIERED = int(os.environ.get("SEARCH_TIERED_RECORDS", "60000"))
INDEX_TIMEOUT = float(os.environ.get("SEARCH_INDEX_TIMEOUT", "120"))
TIER_TIMEOUT = float(os.environ.get("SEARCH_TIER_TIMEOUT", "180"))
TIER_STABLE_SECONDS = 2.0  # several passes of the tiering loop (every 200 ms under tests/run.sh)
SEED_MAIN, SEED_TIERED = 20260301, 20260405
PAGE = 100
BY_OFFSET = [{"offset": "asc"}]
TS_DESC = [{"timestamp": "desc"}]
# The tiered corpus is mostly uncompressed so that 60000 records fill several 1 MiB segments in
# each partition; every codec still writes a slice of it.
TIERED_PLAN = [("none", 4), ("gzip", 1), ("snappy", 1), ("none", 3), ("lz4", 1), ("zstd", 1)]
RUN = f"{int(time.time())}-{''.join(random.choices(string.ascii_lowercase, k=5))}"


# --- HTTP -------------------------------------------------------------------------------------


def http(method, path, body=None, raw=None, timeout=60):
    """(status, parsed JSON body or text) of one request to the admin HTTP port."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    headers = {"content-type": "application/json"} if data is not None else {}
    req = urllib.request.Request(f"http://{ADMIN_HTTP}{path}", data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            code, payload = resp.status, resp.read()
    except urllib.error.HTTPError as e:
        code, payload = e.code, e.read()
    try:
        return code, json.loads(payload)
    except ValueError:
        return code, payload.decode("utf-8", "replace")


def tpath(topic, suffix):
    return f"/topics/{urllib.parse.quote(topic, safe='')}/{suffix}"


def search(topic, body):
    code, resp = http("POST", tpath(topic, "_search"), body)
    assert code == 200, f"POST _search {json.dumps(body)} -> {code} {resp}"
    assert isinstance(resp, dict) and isinstance(resp.get("hits"), list) and isinstance(resp.get("total"), int), resp
    assert isinstance(resp.get("took_ms"), int), resp.get("took_ms")
    splits = resp.get("splits")
    assert isinstance(splits, dict) and isinstance(splits.get("searched"), int) and isinstance(splits.get("pruned"), int), splits
    return resp


def search_status(topic):
    code, resp = http("GET", tpath(topic, "_search/status"))
    assert code == 200, f"GET _search/status -> {code} {resp}"
    return resp


def poll(check, timeout, interval, what):
    """Calls check() -> (done, info) until done; bounded; the last info is in the failure."""
    deadline = time.monotonic() + timeout
    info = None
    while True:
        done, info = check()
        if done:
            return info
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last: {info}")
        time.sleep(interval)


# --- producing and waiting --------------------------------------------------------------------


def produce_corpus(bootstrap, topic, records, plan=None, start_offsets=None):
    """Produces the records (one idempotent acks=all producer per codec slice, in index order,
    each to its record's partition) and sets every record's offset from its delivery report."""
    reports = [None] * len(records)
    first = records[0].idx if records else 0

    def delivered(i, err, msg):
        reports[i - first] = (err, msg.partition(), msg.offset())

    for codec, lo, hi in sc.codec_slices(len(records), plan):
        producer = new_producer(bootstrap, **{
            "compression.type": codec, "linger.ms": 50, "batch.size": 262144,
            "queue.buffering.max.messages": 200000, "message.timeout.ms": 180000})
        for n, rec in enumerate(records[lo:hi]):
            while True:
                try:
                    producer.produce(topic, key=rec.key, value=rec.value, headers=rec.headers,
                                     partition=rec.partition, timestamp=rec.ts,
                                     on_delivery=functools.partial(delivered, rec.idx))
                    break
                except BufferError:
                    producer.poll(0.05)
            if n % 1000 == 0:
                producer.poll(0)
        left = producer.flush(180)
        assert left == 0, f"{left} {codec} messages not delivered"
    errors = [(i, r) for i, r in enumerate(reports) if r is None or r[0] is not None]
    assert not errors, errors[:5]
    next_offset = dict(start_offsets or {})
    for rec, (_, partition, offset) in zip(records, reports):
        assert partition == rec.partition, (rec.idx, partition)
        # One producer at a time, in record order: each partition's offsets follow the records.
        assert offset == next_offset.get(partition, 0), (rec.idx, partition, offset)
        rec.offset = offset
        next_offset[partition] = offset + 1
    return next_offset  # {partition: high watermark}


def status_or_none(topic):
    """The status body while waiting; None (keep waiting) on any other answer."""
    code, st = http("GET", tpath(topic, "_search/status"))
    if code != 200 or not isinstance(st, dict) or not isinstance(st.get("partitions"), list):
        return None, f"HTTP {code} {st}"
    return st, st


def wait_searchable(topic, hwm, timeout):
    def check():
        st, info = status_or_none(topic)
        if st is None:
            return False, info
        assert st.get("topic") == topic and st.get("enabled") is True, st
        parts = {p["partition"]: p for p in st["partitions"]}
        ok = sorted(parts) == sorted(range(sc.PARTITIONS)) and all(
            parts[p]["high_watermark"] == hwm.get(p, 0)
            and parts[p]["searchable_offset"] == parts[p]["high_watermark"]
            and parts[p]["lag"] == 0
            for p in parts)
        return ok, st
    return poll(check, timeout, 0.5, f"{topic}: searchable_offset == high_watermark {hwm} and lag 0")


class Phase:
    """One indexed topic with its records, brute force and counters."""

    def __init__(self, label, topic, records, hwm):
        self.label, self.topic, self.records, self.hwm = label, topic, records, hwm
        self.by_po = {(r.partition, r.offset): r for r in records}
        self.ev = sc.Evaluator(records)
        self.queries = sc.build_queries(records)
        self.queries_run = 0
        self.hits_compared = 0
        self.failed = []
        self.started = time.monotonic()
        self.timings = {}

    def summary(self):
        return (f"search {self.label}: {len(self.records)} records, {self.queries_run} queries run, "
                f"{self.hits_compared} hits compared, {len(self.failed)} failed"
                f"{' (' + ', '.join(self.failed[:8]) + ')' if self.failed else ''}, "
                + ", ".join(f"{k} {v:.1f}s" for k, v in self.timings.items())
                + f", {time.monotonic() - self.started:.1f}s elapsed")


def make_phase(label, admin, bootstrap, topic, config, n, seed, plan=None, partition_weights=(5, 3, 2)):
    started = time.monotonic()
    create_topic(admin, topic, partitions=sc.PARTITIONS, config=config)
    records = sc.generate_corpus(n, seed, partition_weights=partition_weights)
    t = time.monotonic()
    hwm = produce_corpus(bootstrap, topic, records, plan)
    produced = time.monotonic()
    wait_searchable(topic, hwm, INDEX_TIMEOUT)
    phase = Phase(label, topic, records, hwm)
    phase.started = started
    phase.timings = {"generate": t - started, "produce": produced - t, "searchable": time.monotonic() - produced}
    return phase


@pytest.fixture(scope="module")
def admin(bootstrap):
    return AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 15000})


@pytest.fixture(scope="module")
def main(admin, bootstrap):
    return make_phase("main", admin, bootstrap, f"search-main-{RUN}",
                      {"search.enabled": "true", "retention.ms": "-1"}, N_MAIN, SEED_MAIN)


# --- checking answers -------------------------------------------------------------------------


def check_hit(phase, hit, sort=None):
    """The hit names a produced record and carries exactly its fields."""
    po = (hit.get("partition"), hit.get("offset"))
    rec = phase.by_po.get(po)
    assert rec is not None, f"hit {po} is no produced record: {hit}"
    want = sc.expected_hit_fields(rec)
    assert hit.get("topic") == phase.topic, hit
    assert hit.get("timestamp") == rec.ts, (hit, rec)
    for f in ("key", "value"):
        assert f in hit and hit[f] == want[f], f"{f} of {po}: got {hit.get(f)!r}, produced {rec!r}"
        assert hit.get(f"{f}_encoding") == want[f"{f}_encoding"], f"{f}_encoding of {po}: {hit}"
    got_headers = [{k: v for k, v in h.items() if not (k == "value_encoding" and v is None)}
                   for h in hit.get("headers") or []]
    assert got_headers == want["headers"], f"headers of {po}: got {hit.get('headers')!r}, produced {rec.headers!r}"
    if sort is not None:
        assert hit.get("sort") == sc.sort_values(sort, rec), f"sort of {po}: {hit.get('sort')}"


def describe(recs, limit=3):
    return "; ".join(repr(r) for r in recs[:limit])


def locate_difference(phase, body, budget=30):
    """On a wrong total: which partition, and a few records the broker missed or added, found by
    narrowing the time window (the body's own partitions/time are kept)."""
    lines = []
    want_all = phase.ev.matches(body)
    parts = body.get("partitions", list(range(sc.PARTITIONS)))
    lo0 = sc.time_bound(body["time"]["from"]) if "time" in body and "from" in body["time"] else None
    hi0 = sc.time_bound(body["time"]["to"]) if "time" in body and "to" in body["time"] else None
    lo0 = min(r.ts for r in phase.records) if lo0 is None else lo0
    hi0 = max(r.ts for r in phase.records) + 1 if hi0 is None else hi0

    def count(p, lo, hi):
        b = dict(body, partitions=[p], time={"from": lo, "to": hi}, size=1)
        return search(phase.topic, b)["total"], [r for r in want_all if r.partition == p and lo <= r.ts < hi]

    for p in parts:
        got, want = count(p, lo0, hi0)
        lines.append(f"partition {p}: expected {len(want)}, got {got}")
        if got == len(want) or budget <= 0:
            continue
        lo, hi = lo0, hi0
        while len(want) > 200 and hi - lo > 1 and budget > 0:
            mid = (lo + hi) // 2
            budget -= 1
            got_l, want_l = count(p, lo, mid)
            if got_l != len(want_l):
                hi, want = mid, want_l
            else:
                lo, want = mid, [r for r in want if r.ts >= mid]
        b = dict(body, partitions=[p], time={"from": lo, "to": hi}, size=1000, sort=BY_OFFSET)
        hits = search(phase.topic, b)["hits"]
        got_po = {(h["partition"], h["offset"]) for h in hits}
        want_po = {(r.partition, r.offset) for r in want}
        missing = sorted(want_po - got_po)
        extra = sorted(got_po - want_po)
        lines.append(f"  in time [{lo}, {hi}) of partition {p}: {len(missing)} missing, e.g. "
                     f"{describe([phase.by_po[x] for x in missing])}; {len(extra)} unexpected, e.g. "
                     f"{describe([phase.by_po[x] for x in extra if x in phase.by_po])}")
        break
    return "\n".join(lines)


def compare_page(phase, body, sort, resp, want, what):
    got = [(h.get("partition"), h.get("offset")) for h in resp["hits"]]
    exp = [(r.partition, r.offset) for r in want]
    if got != exp:
        i = next((k for k, (a, b) in enumerate(zip(got, exp)) if a != b), min(len(got), len(exp)))
        missing = [phase.by_po[x] for x in exp if x not in set(got)]
        extra = [phase.by_po[x] for x in got if x not in set(exp) and x in phase.by_po]
        raise AssertionError(
            f"{phase.label} {what}: {json.dumps(body)}: {len(got)} hits, expected {len(exp)}; first "
            f"difference at position {i}: got {got[i:i + 3]}, expected {exp[i:i + 3]}; missing e.g. "
            f"{describe(missing)}; unexpected e.g. {describe(extra)}")
    for hit in resp["hits"]:
        check_hit(phase, hit, sort)
    phase.hits_compared += len(got)


def run_query(phase, name):
    body = phase.queries[name]
    phase.queries_run += 1
    try:
        want = phase.ev.matches(body)
        req = dict(body, size=PAGE, sort=BY_OFFSET)
        resp = search(phase.topic, req)
        if resp["total"] != len(want):
            raise AssertionError(
                f"{phase.label} {name}: {json.dumps(body)}: total {resp['total']}, brute force "
                f"{len(want)}\n{locate_difference(phase, body)}")
        compare_page(phase, req, BY_OFFSET, resp, want[:PAGE], name)
    except BaseException:
        phase.failed.append(name)
        raise


# --- the main corpus ---------------------------------------------------------------------------


def test_status_after_indexing(main):
    st = search_status(main.topic)
    assert st["topic"] == main.topic and st["enabled"] is True
    assert [p["partition"] for p in sorted(st["partitions"], key=lambda p: p["partition"])] == [0, 1, 2]
    for p in st["partitions"]:
        assert p["high_watermark"] == main.hwm[p["partition"]], p
        assert p["searchable_offset"] == p["high_watermark"] and p["lag"] == 0, p
        assert isinstance(p["local_splits"], int) and isinstance(p["remote_splits"], int), p
    assert sum(main.hwm.values()) == N_MAIN


@pytest.mark.parametrize("name", sc.QUERY_NAMES)
def test_query(main, name):
    run_query(main, name)


@pytest.mark.parametrize("name,sort", [
    ("match_all", TS_DESC), ("match_value_or", TS_DESC), ("bool_everything", TS_DESC),
    ("time_window_rfc3339", TS_DESC), ("qs_json_range_and", [{"timestamp": "asc"}]),
    ("term_json_string", [{"offset": "desc"}]),
])
def test_sorted_first_page(main, name, sort):
    body = dict(main.queries[name], size=PAGE, sort=sort)
    main.queries_run += 1
    resp = search(main.topic, body)
    assert resp["total"] == len(main.ev.matches(body))
    compare_page(main, body, sort, resp, main.ev.page(body, sort, size=PAGE), f"{name} sorted {sort}")


@pytest.mark.parametrize("name,sort,start,size", [
    ("match_value_two_tokens_or", BY_OFFSET, 100, 100),
    ("match_value_two_tokens_or", TS_DESC, 250, 50),
    ("match_all", TS_DESC, 9900, 100),  # from + size == max_result_window
    ("headers_term", BY_OFFSET, 4321, 7),
])
def test_from_paging(main, name, sort, start, size):
    body = dict(main.queries[name], size=size, sort=sort, **{"from": start})
    main.queries_run += 1
    resp = search(main.topic, body)
    assert resp["total"] == len(main.ev.matches(body))
    compare_page(main, body, sort, resp, main.ev.page(body, sort, start=start, size=size),
                 f"{name} from {start}")


@pytest.mark.parametrize("name,sort", [
    ("match_value_or", BY_OFFSET), ("match_value_or", TS_DESC), ("bool_nested", TS_DESC),
    ("time_window_partitions_bool", BY_OFFSET),
])
def test_search_after_paging(main, name, sort):
    walk_search_after(main, name, sort)


def walk_search_after(phase, name, sort, pages=3):
    body = dict(phase.queries[name], size=PAGE, sort=sort)
    after = None
    for page in range(pages):
        req = dict(body) if after is None else dict(body, search_after=after)
        phase.queries_run += 1
        resp = search(phase.topic, req)
        assert resp["total"] == len(phase.ev.matches(body)), f"total on page {page}"
        want = phase.ev.page(body, sort, size=PAGE, after=after)
        compare_page(phase, req, sort, resp, want, f"{name} search_after page {page}")
        if not resp["hits"]:
            break
        after = resp["hits"][-1]["sort"]


def test_score_order_on_small_results(main):
    """Default sort (_score): the result set of small queries is exact, best first, ties by
    (partition, offset) and each hit's sort is [score, partition, offset]."""
    checked = 0
    for name in sc.QUERY_NAMES:
        body = main.queries[name]
        want = main.ev.matches(body)
        if not 0 < len(want) <= PAGE:
            continue
        main.queries_run += 1
        resp = search(main.topic, dict(body, size=PAGE))
        assert resp["total"] == len(want), name
        hits = resp["hits"]
        assert sorted((h["partition"], h["offset"]) for h in hits) == sorted((r.partition, r.offset) for r in want), name
        for h in hits:
            check_hit(main, h)
            assert isinstance(h["score"], (int, float)), h
            assert h["sort"] == [h["score"], h["partition"], h["offset"]], h
        assert hits == sorted(hits, key=lambda h: (-h["score"], h["partition"], h["offset"])), name
        main.hits_compared += len(hits)
        checked += 1
    assert checked >= 4, f"only {checked} queries with 1..{PAGE} hits"


@pytest.mark.parametrize("q,start", [
    ('key:"order 8812" OR json.order.id:8812', 0),
    ("headers.tenant:acme AND value:timeout", 0),
    ("value:error AND json.status:failed", 1000),
])
def test_get_query_string(main, q, start):
    body = {"query": {"query_string": {"query": q}}}
    want = main.ev.matches(body)
    assert want
    main.queries_run += 1
    code, resp = http("GET", tpath(main.topic, "_search") + "?" + urllib.parse.urlencode(
        {"q": q, "size": PAGE, "from": start}))
    assert code == 200, resp
    assert resp["total"] == len(want), (q, resp["total"], len(want))
    hits = resp["hits"]
    assert len(hits) == min(PAGE, max(0, len(want) - start))
    if start == 0 and len(want) <= PAGE:
        assert sorted((h["partition"], h["offset"]) for h in hits) == sorted((r.partition, r.offset) for r in want)
    else:
        want_po = {(r.partition, r.offset) for r in want}
        assert all((h["partition"], h["offset"]) in want_po for h in hits)
    for h in hits:
        check_hit(main, h)
    main.hits_compared += len(hits)


def test_default_size_and_score_order(main):
    body = main.queries["match_value_or"]
    want = {(r.partition, r.offset) for r in main.ev.matches(body)}
    main.queries_run += 1
    resp = search(main.topic, body)  # no size, from or sort: 10 best by score
    assert resp["total"] == len(want)
    hits = resp["hits"]
    assert len(hits) == min(10, len(want))
    assert all((h["partition"], h["offset"]) in want for h in hits)
    assert hits == sorted(hits, key=lambda h: (-h["score"], h["partition"], h["offset"]))
    for h in hits:
        check_hit(main, h)
    main.hits_compared += len(hits)


def score_walk(phase, name, use_from=False):
    """Pages through every hit in score order (search_after, or from): together the pages are
    exactly the brute-force set, each hit once, best first across pages."""
    body = dict(phase.queries[name], size=PAGE)
    want = {(r.partition, r.offset) for r in phase.ev.matches(body)}
    seen, after, last = [], None, None
    for page in range(len(want) // PAGE + 2):
        req = dict(body, **{"from": page * PAGE}) if use_from else (
            dict(body) if after is None else dict(body, search_after=after))
        phase.queries_run += 1
        resp = search(phase.topic, req)
        assert resp["total"] == len(want), (name, page, resp["total"], len(want))
        hits = resp["hits"]
        for h in hits:
            check_hit(phase, h)
            key = (-h["score"], h["partition"], h["offset"])
            assert last is None or key > last, f"{name} page {page}: {h['sort']} does not follow {last}"
            last = key
        seen += [(h["partition"], h["offset"]) for h in hits]
        phase.hits_compared += len(hits)
        if not hits:
            break
        after = hits[-1]["sort"]
    assert len(seen) == len(set(seen)), f"{name}: {len(seen) - len(set(seen))} hits on two pages"
    assert set(seen) == want, (f"{name}: pages hold {len(seen)} hits, brute force {len(want)}; missing e.g. "
                               f"{describe([phase.by_po[x] for x in sorted(want - set(seen))])}")


@pytest.mark.parametrize("name,use_from", [("qs_json_phrase", False), ("match_key_and", True)])
def test_score_order_walk(main, name, use_from):
    score_walk(main, name, use_from)


def encoding_samples(phase, per_kind=4):
    kinds = {
        "binary key": lambda r: r.key is not None and r.key_toks is None,
        "null key": lambda r: r.key is None,
        "binary value": lambda r: r.value is not None and r.value_toks is None,
        "null value": lambda r: r.value is None,
        "empty value": lambda r: r.value == b"",
        "binary header": lambda r: any(sc.utf8(v) is None for _, v in r.headers or ()),
        "no headers": lambda r: not r.headers,
        "unicode key": lambda r: r.key is not None and r.key_toks is not None and not r.key.isascii(),
    }
    out = []
    for kind, pred in kinds.items():
        found = [r for r in phase.records if pred(r)]
        assert found, f"the corpus has no record with a {kind}"
        step = max(1, len(found) // per_kind)
        out += [(kind, r) for r in found[::step][:per_kind]]
    return out


def check_encodings(phase):
    """Records with binary / null / empty keys, values and headers come back as the spec says
    (text or base64 with *_encoding, null), found by term on offset within their partition."""
    for kind, rec in encoding_samples(phase):
        body = {"query": {"term": {"offset": rec.offset}}, "partitions": [rec.partition]}
        phase.queries_run += 1
        resp = search(phase.topic, body)
        assert resp["total"] == 1 and len(resp["hits"]) == 1, (kind, rec, resp)
        check_hit(phase, resp["hits"][0])
        phase.hits_compared += 1


def test_hit_encodings(main):
    check_encodings(main)


def test_searchable_offset_is_a_promise(admin, bootstrap):
    """While records are being indexed, every record below a partition's searchable_offset is
    found (the count of a query within that partition is at least the brute-force count below
    it); once lag is 0 every answer is exact. Four rounds of produce-then-query."""
    topic = create_topic(admin, f"search-live-{RUN}", partitions=sc.PARTITIONS,
                         config={"search.enabled": "true", "retention.ms": "-1"})
    records = sc.generate_corpus(12000, seed=77)
    body = {"query": {"match": {"value": "error"}}}
    pred = sc.request_pred(body)
    hwm, produced, observations = {}, [], 0
    for lo in range(0, len(records), 3000):
        hwm = produce_corpus(bootstrap, topic, records[lo:lo + 3000], start_offsets=hwm)
        produced = records[:lo + 3000]
        deadline = time.monotonic() + INDEX_TIMEOUT
        while True:
            st, info = status_or_none(topic)
            assert st is not None, info
            parts = {p["partition"]: p for p in st["partitions"]}
            for p, ps in parts.items():
                so = ps["searchable_offset"]
                assert 0 <= so <= ps["high_watermark"] and ps["lag"] == ps["high_watermark"] - so, ps
                for b in ({}, body):
                    got = search(topic, dict(b, partitions=[p], size=0))["total"]
                    below = sum(1 for r in produced if r.partition == p and r.offset < so and (not b or pred(r)))
                    every = sum(1 for r in produced if r.partition == p and (not b or pred(r)))
                    assert below <= got <= every, (p, ps, b, got, below, every)
                    observations += 1
            if all(parts[p]["searchable_offset"] == hwm.get(p, 0) for p in parts):
                break
            assert time.monotonic() < deadline, f"not searchable in {INDEX_TIMEOUT}s: {st}"
            time.sleep(0.05)
        for b in ({}, body, {"query": {"term": {"json.status": "paid"}}}):
            resp = search(topic, dict(b, size=1))
            want = sum(1 for r in produced if sc.request_pred(b)(r))
            assert resp["total"] == want, (len(produced), b, resp["total"], want)
    print(f"{observations} observations of searchable_offset")


def test_repeated_header_names(admin, bootstrap):
    """Kafka lets a record carry one header name several times: every value is indexed under the
    name and a hit lists the headers exactly as produced, in order."""
    topic = create_topic(admin, f"search-headers-{RUN}", partitions=1,
                         config={"search.enabled": "true", "retention.ms": "-1"})
    headers = [("trace", b"alpha"), ("other", b"x"), ("trace", b"beta"), ("trace", None)]
    p = new_producer(bootstrap)
    p.produce(topic, value=b"first", headers=headers, partition=0)
    p.produce(topic, value=b"second", headers=[("trace", b"gamma")], partition=0)
    assert p.flush(TIMEOUT) == 0
    deadline = time.monotonic() + INDEX_TIMEOUT
    while True:
        st, info = status_or_none(topic)
        if st is not None and st["partitions"][0]["searchable_offset"] == 2:
            break
        assert time.monotonic() < deadline, f"not searchable in {INDEX_TIMEOUT}s: {info}"
        time.sleep(0.05)
    for token, want in (("alpha", ["first"]), ("beta", ["first"]), ("gamma", ["second"]), ("x", [])):
        hits = search(topic, {"query": {"match": {"headers.trace": token}}})["hits"]
        assert [h["value"] for h in hits] == want, (token, hits)
    hit = search(topic, {"query": {"match": {"headers.trace": "beta"}}})["hits"][0]
    assert hit["headers"] == [{"key": "trace", "value": "alpha"}, {"key": "other", "value": "x"},
                              {"key": "trace", "value": "beta"}, {"key": "trace", "value": None}], hit


def expect_error(code, resp, status, types, what):
    assert code == status, f"{what}: HTTP {code} {resp}"
    assert isinstance(resp, dict) and isinstance(resp.get("error"), dict), f"{what}: body {resp!r}"
    assert resp["error"].get("type") in types, f"{what}: error type {resp['error'].get('type')!r}, want {types}"
    assert isinstance(resp["error"].get("reason"), str) and resp["error"]["reason"], f"{what}: no reason: {resp}"


def test_bad_requests(main, admin, bootstrap):
    def still_works():
        resp = search(main.topic, {"query": {"match_all": {}}, "size": 1})
        assert resp["total"] == N_MAIN and len(resp["hits"]) == 1
        resp = search(main.topic, {"query": main.queries["match_key"]["query"], "size": PAGE, "sort": BY_OFFSET})
        want = main.ev.matches(main.queries["match_key"])
        assert [(h["partition"], h["offset"]) for h in resp["hits"]] == [(r.partition, r.offset) for r in want]

    path = tpath(main.topic, "_search")
    cases = [
        ("malformed JSON", dict(raw=b'{"query": {"match_all": {}'), 400, {"parse_error"}),
        ("not a JSON object", dict(raw=b"[1, 2]"), 400, {"parse_error"}),
        ("query_string that does not parse", dict(body={"query": {"query_string": {"query": "value:(unclosed"}}}),
         400, {"parse_error"}),
        ("unknown query type", dict(body={"query": {"fuzzy_wuzzy": {"value": "x"}}}), 400, {"parse_error", "bad_request"}),
        ("from + size over max_result_window", dict(body={"query": {"match_all": {}}, "from": 9995, "size": 10}),
         400, {"bad_request"}),
        ("size over max_result_window", dict(body={"size": 10001}), 400, {"bad_request"}),
        ("unknown field", dict(body={"query": {"term": {"no_such_field": "x"}}}), 400, {"bad_request"}),
        ("bad range bound", dict(body={"query": {"range": {"timestamp": {"gte": "yesterday"}}}}), 400,
         {"bad_request"}),
        ("bad time bound", dict(body={"time": {"from": "not a time"}}), 400, {"bad_request", "parse_error"}),
    ]
    for what, kwargs, status, types in cases:
        code, resp = http("POST", path, **kwargs)
        expect_error(code, resp, status, types, what)
        if what == "query_string that does not parse":
            assert len(resp["error"]["reason"]) > 3, resp
        still_works()
    code, resp = http("GET", path + "?" + urllib.parse.urlencode({"q": "value:(unclosed"}))
    expect_error(code, resp, 400, {"parse_error"}, "GET ?q= that does not parse")
    still_works()

    code, resp = http("POST", tpath(f"search-no-such-topic-{RUN}", "_search"), {"query": {"match_all": {}}})
    expect_error(code, resp, 404, {"unknown_topic"}, "unknown topic")
    still_works()

    off = create_topic(admin, f"search-off-{RUN}", partitions=1)
    producer = new_producer(bootstrap)
    producer.produce(off, value=b"error disk full", partition=0)
    assert producer.flush(TIMEOUT) == 0
    code, resp = http("POST", tpath(off, "_search"), {"query": {"match": {"value": "error"}}})
    expect_error(code, resp, 400, {"search_disabled"}, "topic without search.enabled")
    still_works()


def test_main_summary(main, capsys):
    with capsys.disabled():
        print("\n" + main.summary())


# --- tiered ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiered(admin, bootstrap):
    topic = f"search-tiered-{RUN}"
    phase = make_phase("tiered", admin, bootstrap, topic, {
        "search.enabled": "true", "remote.storage.enable": "true", "segment.bytes": "1048576",
        "local.retention.bytes": "1", "retention.ms": "-1"},
        N_TIERED, SEED_TIERED, plan=TIERED_PLAN, partition_weights=(1, 1, 1))
    t = time.monotonic()
    seen = {"splits": None, "since": 0.0}

    def check():
        st, info = status_or_none(topic)
        if st is None:
            return False, info
        parts = st["partitions"]
        ok = len(parts) == sc.PARTITIONS and all(
            p["remote_splits"] > 0 and p["local_splits"] == 0 and p["lag"] == 0
            and p["searchable_offset"] == p["high_watermark"] == phase.hwm[p["partition"]] for p in parts)
        # ... and unchanged for a while: a segment sealed last may still be on its way.
        splits = sorted((p["partition"], p["remote_splits"], p["local_splits"]) for p in parts)
        if splits != seen["splits"]:
            seen["splits"], seen["since"] = splits, time.monotonic()
        return ok and time.monotonic() - seen["since"] >= TIER_STABLE_SECONDS, st
    phase.tier_status = poll(check, TIER_TIMEOUT, 0.25,
                             f"{topic}: remote_splits > 0 and local_splits == 0 in every partition, "
                             f"unchanged for {TIER_STABLE_SECONDS}s")
    phase.timings["tiered"] = time.monotonic() - t
    return phase


@pytest.mark.tiered
def test_tiered_splits_are_remote(tiered, admin):
    st = tiered.tier_status
    remote = {p["partition"]: p["remote_splits"] for p in st["partitions"]}
    print(f"remote splits per partition: {remote}")
    s3 = s3_target()
    if s3 is None:
        print("REMOTE_TIER_URL/REMOTE_TIER_ENDPOINT not set: the .split objects are not checked")
        return
    client, bucket, prefix = s3
    cluster_id = admin.describe_cluster(request_timeout=TIMEOUT).result(TIMEOUT).cluster_id
    topic_prefix = "/".join(x for x in (prefix, cluster_id, f"{tiered.topic}-{topic_uuid(admin, tiered.topic)}") if x) + "/"
    keys = list_keys(client, bucket, topic_prefix)
    splits = [k for k in keys if k.endswith(".split")]
    if not splits:
        elsewhere = [k for k in list_keys(client, bucket, prefix) if k.endswith(".split")][:5]
        raise AssertionError(f"no .split object under s3://{bucket}/{topic_prefix} ({len(keys)} objects there); "
                             f".split objects elsewhere under the prefix: {elsewhere}")
    assert len(splits) >= sum(remote.values()), (len(splits), remote)


@pytest.mark.tiered
@pytest.mark.parametrize("name", sc.QUERY_NAMES)
def test_tiered_query(tiered, name):
    run_query(tiered, name)


@pytest.mark.tiered
def test_tiered_paging_and_pruning(tiered):
    walk_search_after(tiered, "match_value_or", TS_DESC)
    walk_search_after(tiered, "bool_should_only", BY_OFFSET)
    # A window over the first 2% of the time range: the remote splits holding later records lie
    # outside it and must not be opened.
    lo = min(r.ts for r in tiered.records)
    hi = sc.BASE_TS + (len(tiered.records) // 2) * sc.TS_STEP // 50
    body = {"query": {"match": {"value": "error"}}, "time": {"from": lo, "to": hi}, "size": PAGE,
            "sort": BY_OFFSET}
    tiered.queries_run += 1
    resp = search(tiered.topic, body)
    want = tiered.ev.matches(body)
    assert resp["total"] == len(want)
    compare_page(tiered, body, BY_OFFSET, resp, want[:PAGE], "early time window")
    remote = [p["remote_splits"] for p in tiered.tier_status["partitions"]]
    if max(remote) >= 2:
        assert resp["splits"]["pruned"] >= 1, (resp["splits"], remote)


@pytest.mark.tiered
def test_tiered_hit_encodings_and_score_walk(tiered):
    check_encodings(tiered)
    score_walk(tiered, "qs_json_phrase")


@pytest.mark.tiered
def test_tiered_summary(tiered, capsys):
    with capsys.disabled():
        print("\n" + tiered.summary())
